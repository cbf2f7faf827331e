package llmdistill

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// answerSchema is the JSON Schema of one batch's answer, sent as the
// response_format (strict: every property required, no others).
const answerSchema = `{
  "type": "object",
  "properties": {
    "items": {
      "type": "array",
      "items": {
        "type": "object",
        "properties": {
          "item_id": {"type": "string"},
          "rating": {"type": "number"},
          "reason": {"type": "string"}
        },
        "required": ["item_id", "rating", "reason"],
        "additionalProperties": false
      }
    },
    "reflection": {"type": "string"},
    "profile": {"type": "string"}
  },
  "required": ["items", "reflection", "profile"],
  "additionalProperties": false
}`

// flexString accepts a JSON string or number (a model may write an id as
// 1193 rather than "1193").
type flexString string

func (f *flexString) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		*f = flexString(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("want a string, got %s", b)
	}
	*f = flexString(n.String())
	return nil
}

// flexNumber accepts a JSON number or a numeric string.
type flexNumber float64

func (f *flexNumber) UnmarshalJSON(b []byte) error {
	var x float64
	if json.Unmarshal(b, &x) == nil {
		*f = flexNumber(x)
		return nil
	}
	var s string
	if json.Unmarshal(b, &s) == nil {
		if x, err := strconv.ParseFloat(strings.TrimSpace(s), 64); err == nil {
			*f = flexNumber(x)
			return nil
		}
	}
	return fmt.Errorf("want a number, got %s", b)
}

type answerItem struct {
	ItemID flexString  `json:"item_id"`
	Rating *flexNumber `json:"rating"`
	Reason string      `json:"reason"`
}

type answer struct {
	Items      []answerItem `json:"items"`
	Reflection string       `json:"reflection"`
	Profile    *string      `json:"profile"`
}

// batchResult is a validated answer: one reason per batch item, in batch
// order.
type batchResult struct {
	Reasons    []string
	Reflection string
	Profile    string
}

// extractJSON returns the JSON object in s, tolerating a Markdown code
// fence or prose around it.
func extractJSON(s string) string {
	s = strings.TrimSpace(s)
	if i, j := strings.IndexByte(s, '{'), strings.LastIndexByte(s, '}'); i >= 0 && j > i {
		return s[i : j+1]
	}
	return s
}

// validate checks an answer's content against the batch: valid JSON of the
// schema's shape, the batch's item ids each exactly once, ratings echoed
// unchanged, non-empty reasons and profile, and a reflection from the second
// batch on. It returns every problem found.
func validate(content string, b *BatchData, ratings []float64) (*batchResult, []string) {
	var a answer
	dec := json.NewDecoder(bytes.NewReader([]byte(extractJSON(content))))
	if err := dec.Decode(&a); err != nil {
		return nil, []string{fmt.Sprintf("the answer is not a valid JSON object of the required form: %v", err)}
	}
	var errs []string
	pos := make(map[string]int, len(b.Items))
	for i, it := range b.Items {
		pos[it.ID] = i
	}
	reasons := make([]string, len(b.Items))
	seen := make([]bool, len(b.Items))
	for k, ai := range a.Items {
		id := strings.TrimSpace(string(ai.ItemID))
		i, ok := pos[id]
		switch {
		case !ok:
			errs = append(errs, fmt.Sprintf("items[%d]: item_id %q is not one of this batch's movies", k, id))
			continue
		case seen[i]:
			errs = append(errs, fmt.Sprintf("items[%d]: item_id %q appears more than once", k, id))
			continue
		}
		seen[i] = true
		switch {
		case ai.Rating == nil:
			errs = append(errs, fmt.Sprintf("item %q: rating missing (it is %s)", id, b.Items[i].Rating))
		case math.Abs(float64(*ai.Rating)-ratings[i]) > 1e-6:
			errs = append(errs, fmt.Sprintf("item %q: rating %g, but I rated it %s", id, float64(*ai.Rating), b.Items[i].Rating))
		}
		r := cleanReason(ai.Reason)
		if r == "" {
			errs = append(errs, fmt.Sprintf("item %q: reason is empty", id))
		}
		reasons[i] = r
	}
	for i, ok := range seen {
		if !ok {
			errs = append(errs, fmt.Sprintf("item_id %q (rated %s) is missing", b.Items[i].ID, b.Items[i].Rating))
		}
	}
	profile := ""
	if a.Profile != nil {
		profile = strings.TrimSpace(*a.Profile)
	}
	if profile == "" {
		errs = append(errs, "profile is empty")
	}
	reflection := strings.TrimSpace(a.Reflection)
	if reflection == "" && !b.First {
		errs = append(errs, "reflection is empty")
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return &batchResult{Reasons: reasons, Reflection: reflection, Profile: profile}, nil
}

// cleanReason makes a reason complete "I rated X r because …": it drops a
// leading "I rated … because" or "because" and a final full stop.
func cleanReason(s string) string {
	s = strings.TrimSpace(s)
	low := strings.ToLower(s)
	if strings.HasPrefix(low, "i rated") {
		if i := strings.Index(low, " because "); i >= 0 && i < 200 {
			s = s[i+len(" because "):]
		}
	} else if strings.HasPrefix(low, "because ") {
		s = s[len("because "):]
	}
	s = strings.TrimSpace(strings.TrimRight(strings.TrimSpace(s), "."))
	return s
}

// words counts the words of s.
func words(s string) int { return len(strings.Fields(s)) }
