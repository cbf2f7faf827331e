package llm

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Batch files: the JSONL formats of the OpenAI Batch API and of
// `vllm run-batch`. An input line is
//
//	{"custom_id":"u1-b0","method":"POST","url":"/v1/chat/completions","body":{...}}
//
// and an output line
//
//	{"id":"...","custom_id":"u1-b0","response":{"status_code":200,"request_id":"...","body":{...}},"error":null}
//
// Output lines come in any order; custom_id ties them to their requests.
// ImportBatch stores every successful answer in a Cache under the key of its
// request's body, where the next live run finds it.

// BatchURLPrefix is the version prefix of the url field of batch lines.
const BatchURLPrefix = "/v1"

// BatchRequest is one line of a batch input file.
type BatchRequest struct {
	CustomID string          `json:"custom_id"`
	Method   string          `json:"method"`
	URL      string          `json:"url"`
	Body     json.RawMessage `json:"body"`
}

// NewBatchRequest builds a POST line for the endpoint path (e.g. PathChat)
// with body encoded as JSON, exactly as a live request would send it.
func NewBatchRequest(customID, path string, body any) (BatchRequest, error) {
	if customID == "" {
		return BatchRequest{}, errors.New("llm: batch request without custom_id")
	}
	b, err := json.Marshal(body)
	if err != nil {
		return BatchRequest{}, fmt.Errorf("llm: batch request %s: %w", customID, err)
	}
	return BatchRequest{CustomID: customID, Method: "POST", URL: BatchURLPrefix + path, Body: b}, nil
}

// Key returns the cache key of the request, the same key a live request
// with this body gets.
func (r BatchRequest) Key() (string, error) {
	path := strings.TrimPrefix(r.URL, BatchURLPrefix)
	var buf bytes.Buffer
	if err := json.Compact(&buf, r.Body); err != nil {
		return "", fmt.Errorf("llm: batch request %s: body: %w", r.CustomID, err)
	}
	return RequestKey(path, buf.Bytes()), nil
}

// ChatRequestKey returns the cache key of a chat request.
func ChatRequestKey(req ChatRequest) (string, error) {
	b, err := json.Marshal(req)
	if err != nil {
		return "", fmt.Errorf("llm: encode request: %w", err)
	}
	return RequestKey(PathChat, b), nil
}

// BatchWriter writes batch input lines, refusing a repeated custom_id.
type BatchWriter struct {
	w   *bufio.Writer
	ids map[string]bool
}

// NewBatchWriter returns a writer of batch lines to w; call Flush at the end.
func NewBatchWriter(w io.Writer) *BatchWriter {
	return &BatchWriter{w: bufio.NewWriter(w), ids: map[string]bool{}}
}

// Add writes one line.
func (bw *BatchWriter) Add(r BatchRequest) error {
	if r.CustomID == "" {
		return errors.New("llm: batch request without custom_id")
	}
	if bw.ids[r.CustomID] {
		return fmt.Errorf("llm: batch custom_id %q written twice", r.CustomID)
	}
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("llm: batch request %s: %w", r.CustomID, err)
	}
	bw.ids[r.CustomID] = true
	bw.w.Write(b)
	return bw.w.WriteByte('\n')
}

// AddChat writes a chat completion request.
func (bw *BatchWriter) AddChat(customID string, req ChatRequest) error {
	r, err := NewBatchRequest(customID, PathChat, req)
	if err != nil {
		return err
	}
	return bw.Add(r)
}

// Len returns the number of lines written.
func (bw *BatchWriter) Len() int { return len(bw.ids) }

// Flush writes any buffered lines.
func (bw *BatchWriter) Flush() error { return bw.w.Flush() }

// BatchResponse is the answer inside a batch output line.
type BatchResponse struct {
	StatusCode int             `json:"status_code"`
	RequestID  string          `json:"request_id,omitempty"`
	Body       json.RawMessage `json:"body"`
}

// BatchError is a failed request's error inside a batch output line.
type BatchError struct {
	Code    any    `json:"code,omitempty"`
	Message string `json:"message"`
}

// BatchResult is one line of a batch output (or error) file.
type BatchResult struct {
	ID       string         `json:"id,omitempty"`
	CustomID string         `json:"custom_id"`
	Response *BatchResponse `json:"response"`
	Error    *BatchError    `json:"error"`
}

// Body returns the answer's body when the request succeeded (status 2xx,
// no error), and otherwise an error saying why it did not.
func (r BatchResult) Body() ([]byte, error) {
	switch {
	case r.Error != nil:
		c := codeString(r.Error.Code)
		if c != "" {
			c = " (code " + c + ")"
		}
		return nil, fmt.Errorf("batch request %s failed: %s%s", r.CustomID, r.Error.Message, c)
	case r.Response == nil:
		return nil, fmt.Errorf("batch request %s: no response", r.CustomID)
	case r.Response.StatusCode/100 != 2:
		msg, _, code := parseErrorBody(r.Response.Body)
		return nil, fmt.Errorf("batch request %s: status %d: %s %s", r.CustomID, r.Response.StatusCode, msg, code)
	case len(r.Response.Body) == 0 || r.Response.Body[0] != '{':
		return nil, fmt.Errorf("batch request %s: response body is not a JSON object", r.CustomID)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, r.Response.Body); err != nil {
		return nil, fmt.Errorf("batch request %s: response body: %w", r.CustomID, err)
	}
	return buf.Bytes(), nil
}

// forEachLine calls fn for every non-blank line of r with its 1-based number.
func forEachLine(r io.Reader, name string, fn func(line int, b []byte) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1<<20), maxBody)
	for n := 1; sc.Scan(); n++ {
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		if err := fn(n, b); err != nil {
			return fmt.Errorf("%s:%d: %w", name, n, err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// ReadBatchRequests reads a batch input file; name labels errors.
func ReadBatchRequests(r io.Reader, name string) ([]BatchRequest, error) {
	var out []BatchRequest
	seen := map[string]bool{}
	err := forEachLine(r, name, func(_ int, b []byte) error {
		var q BatchRequest
		if err := json.Unmarshal(b, &q); err != nil {
			return err
		}
		switch {
		case q.CustomID == "":
			return errors.New("custom_id missing")
		case seen[q.CustomID]:
			return fmt.Errorf("custom_id %q repeated", q.CustomID)
		case !strings.HasPrefix(q.URL, "/"):
			return fmt.Errorf("url %q: want a path such as /v1/chat/completions", q.URL)
		case len(q.Body) == 0 || q.Body[0] != '{':
			return errors.New("body missing or not a JSON object")
		}
		seen[q.CustomID] = true
		out = append(out, q)
		return nil
	})
	return out, err
}

// ReadBatchResults reads a batch output (or error) file into a map by
// custom_id; name labels errors.
func ReadBatchResults(r io.Reader, name string) (map[string]BatchResult, error) {
	out := map[string]BatchResult{}
	err := forEachLine(r, name, func(_ int, b []byte) error {
		var res BatchResult
		if err := json.Unmarshal(b, &res); err != nil {
			return err
		}
		if res.CustomID == "" {
			return errors.New("custom_id missing")
		}
		if _, dup := out[res.CustomID]; dup {
			return fmt.Errorf("custom_id %q repeated", res.CustomID)
		}
		out[res.CustomID] = res
		return nil
	})
	return out, err
}

// ImportStats counts what ImportBatch did.
type ImportStats struct {
	Imported  int      // answers stored in the cache
	Failed    []string // requests whose result is an error (one message each)
	Missing   int      // requests without a result
	Unmatched int      // results whose custom_id names no request
}

// ImportBatch stores the successful results of reqs in cache, each under
// its request's key, and counts their tokens in acct when not nil.
func ImportBatch(ctx context.Context, cache Cache, acct *Accounting, reqs []BatchRequest, results map[string]BatchResult) (ImportStats, error) {
	var st ImportStats
	matched := 0
	for _, q := range reqs {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		res, ok := results[q.CustomID]
		if !ok {
			st.Missing++
			continue
		}
		matched++
		body, err := res.Body()
		if err != nil {
			st.Failed = append(st.Failed, err.Error())
			continue
		}
		key, err := q.Key()
		if err != nil {
			return st, err
		}
		if err := cache.Put(ctx, key, body); err != nil {
			return st, fmt.Errorf("llm: import %s: %w", q.CustomID, err)
		}
		st.Imported++
		if acct != nil {
			var m struct {
				Model string `json:"model"`
			}
			var u struct {
				Usage Usage `json:"usage"`
			}
			json.Unmarshal(q.Body, &m)
			json.Unmarshal(body, &u)
			acct.Add(m.Model, u.Usage, false)
		}
	}
	st.Unmatched = len(results) - matched
	return st, nil
}
