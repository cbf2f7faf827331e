package serve

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"testing"
)

func TestAgentCatalog(t *testing.T) {
	aw := newAgentWorld(t)
	ts, _ := agentServer(t, aw)

	var all listResponse[UserInfo]
	if st := call(t, ts, "GET", "/v1/agents", agentKey, "", &all); st != http.StatusOK {
		t.Fatalf("GET /v1/agents: status %d", st)
	}
	if all.Object != "list" || all.Total != len(aw.profiled) || len(all.Data) != len(aw.profiled) || all.HasMore || all.Offset != 0 {
		t.Fatalf("GET /v1/agents: %+v, want the %d profiled users", all, len(aw.profiled))
	}
	for i, u := range all.Data {
		if u.ID != aw.profiled[i] || u.Persona != aw.in.Personas[u.ID] {
			t.Errorf("user %d: %+v, want %s of persona %d", i, u, aw.profiled[i], aw.in.Personas[aw.profiled[i]])
		}
	}

	// Pages put together give the whole list.
	var paged []UserInfo
	for off := 0; ; off += 4 {
		var p listResponse[UserInfo]
		if st := call(t, ts, "GET", fmt.Sprintf("/v1/agents?offset=%d&limit=4", off), agentKey, "", &p); st != http.StatusOK {
			t.Fatalf("page at %d: status %d", off, st)
		}
		if len(p.Data) > 4 || p.Total != len(aw.profiled) || p.Offset != off {
			t.Fatalf("page at %d: %+v", off, p)
		}
		paged = append(paged, p.Data...)
		if !p.HasMore {
			break
		}
	}
	if !slices.Equal(paged, all.Data) {
		t.Fatalf("pages %v, whole list %v", paged, all.Data)
	}

	// The persona filter.
	for k := range 2 {
		var p listResponse[UserInfo]
		if st := call(t, ts, "GET", "/v1/agents?persona="+strconv.Itoa(k), agentKey, "", &p); st != http.StatusOK {
			t.Fatalf("persona %d: status %d", k, st)
		}
		if p.Total == 0 || p.Total != aw.sum.Sizes[k] {
			t.Errorf("persona %d: %d users, the summary says %d", k, p.Total, aw.sum.Sizes[k])
		}
		for _, u := range p.Data {
			if u.Persona != k {
				t.Errorf("persona %d lists %+v", k, u)
			}
		}
	}

	var items listResponse[ItemInfo]
	if st := call(t, ts, "GET", "/v1/items?limit=10000", agentKey, "", &items); st != http.StatusOK {
		t.Fatalf("GET /v1/items: status %d", st)
	}
	if items.Total != len(aw.d.Items) || len(items.Data) != len(aw.d.Items) || items.Data[3].ID != aw.d.Items[3].ID || items.Data[3].Title != aw.d.Items[3].Title {
		t.Fatalf("GET /v1/items: %d of %d items, [3] = %+v", len(items.Data), items.Total, items.Data[3])
	}
	var past listResponse[ItemInfo]
	if st := call(t, ts, "GET", "/v1/items?offset=100000", agentKey, "", &past); st != http.StatusOK || past.Data == nil || len(past.Data) != 0 || past.HasMore {
		t.Fatalf("past the end: status %d, %+v", st, past)
	}

	for _, c := range []struct {
		method, path, key string
		want              int
	}{
		{"GET", "/v1/agents?limit=0", agentKey, http.StatusBadRequest},
		{"GET", "/v1/agents?limit=10001", agentKey, http.StatusBadRequest},
		{"GET", "/v1/agents?offset=-1", agentKey, http.StatusBadRequest},
		{"GET", "/v1/agents?offset=x", agentKey, http.StatusBadRequest},
		{"GET", "/v1/agents?persona=two", agentKey, http.StatusBadRequest},
		{"GET", "/v1/agents?persona=-2", agentKey, http.StatusBadRequest},
		{"GET", "/v1/items?limit=1e3", agentKey, http.StatusBadRequest},
		{"POST", "/v1/agents", agentKey, http.StatusMethodNotAllowed},
		{"DELETE", "/v1/items", agentKey, http.StatusMethodNotAllowed},
		{"GET", "/v1/items", "", http.StatusUnauthorized},
	} {
		if st := call(t, ts, c.method, c.path, c.key, "", nil); st != c.want {
			t.Errorf("%s %s: status %d, want %d", c.method, c.path, st, c.want)
		}
	}
}

// A service that cannot list its users and items mounts no catalog.
func TestAgentCatalogAbsent(t *testing.T) {
	aw := newAgentWorld(t)
	s, err := New(aw.m, aw.tok, Options{Name: "base"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.HandleAgents(fakeAgents{}, AgentOptions{})
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	for _, p := range []string{"/v1/agents", "/v1/items"} {
		if st := call(t, ts, "GET", p, "", "", nil); st != http.StatusNotFound {
			t.Errorf("GET %s: status %d, want 404", p, st)
		}
	}
}

func TestMetricsMemory(t *testing.T) {
	var buf bytes.Buffer
	newMetrics().write(&buf)
	runtime.GC() // the live heap is measured by a collection
	want := []string{"go_memstats_heap_inuse_bytes", "go_goroutines", "usersim_serve_memory_bytes", "usersim_serve_heap_live_bytes"}
	if runtime.GOOS == "linux" {
		want = append(want, "process_resident_memory_bytes", "usersim_serve_resident_memory_peak_bytes")
	}
	for _, name := range want {
		m := regexp.MustCompile(`(?m)^# TYPE ` + name + ` gauge\n` + name + ` (\d+)$`).FindStringSubmatch(buf.String())
		if m == nil {
			t.Errorf("no gauge %s in\n%s", name, buf.String())
			continue
		}
		if v, _ := strconv.ParseInt(m[1], 10, 64); v <= 0 {
			t.Errorf("%s = %s", name, m[1])
		}
	}
}

func TestProcStatusBytes(t *testing.T) {
	status := []byte("Name:\tusersim\nVmPeak:\t  900 kB\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\nVmBad:\t12 MB\nVmNum:\tx kB\n")
	for _, c := range []struct {
		field string
		want  int64
		ok    bool
	}{
		{"VmRSS", 10 << 20, true},
		{"VmHWM", 20 << 20, true},
		{"VmPeak", 900 << 10, true},
		{"VmBad", 0, false},
		{"VmNum", 0, false},
		{"VmSwap", 0, false},
		{"Vm", 0, false},
	} {
		got, ok := procStatusBytes(status, c.field)
		if got != c.want || ok != c.ok {
			t.Errorf("%s: %d, %v; want %d, %v", c.field, got, ok, c.want, c.ok)
		}
	}
}

// catalogAgents is fakeAgents with a catalog of n users (personas -1..1)
// and n items.
type catalogAgents struct {
	fakeAgents
	users []UserInfo
	items []ItemInfo
}

func newCatalogAgents(n int) catalogAgents {
	c := catalogAgents{fakeAgents: fakeAgents{users: map[string]bool{}, items: map[string]bool{}}}
	for i := range n {
		c.users = append(c.users, UserInfo{ID: fmt.Sprintf("u%d", i), Persona: i%3 - 1})
		c.items = append(c.items, ItemInfo{ID: fmt.Sprintf("m%d", i)})
	}
	return c
}

func (c catalogAgents) Users() []UserInfo { return c.users }
func (c catalogAgents) Items() []ItemInfo { return c.items }

// FuzzCatalogQuery sends arbitrary limit, offset and persona parameters to
// the catalog listings: never a 5xx, every error in OpenAI's shape, every
// page within its limit and consistent with the whole list.
func FuzzCatalogQuery(f *testing.F) {
	aw := newAgentWorld(f)
	s, err := New(aw.m, aw.tok, Options{Name: "base"})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	const n = 25
	s.HandleAgents(newCatalogAgents(n), AgentOptions{})
	ts := httptest.NewServer(s.Handler())
	f.Cleanup(ts.Close)
	for _, q := range [][3]string{{"", "", ""}, {"3", "", ""}, {"5", "24", ""}, {"", "", "-1"}, {"2", "1", "1"}, {"0", "", ""}, {"", "-1", ""},
		{"99999999999999999999", "", ""}, {"", "", "x"}, {"\x00", "", ""}, {"", "1e3", ""}, {"+3", " 1", "01"}} {
		f.Add(true, q[0], q[1], q[2])
		f.Add(false, q[0], q[1], q[2])
	}
	f.Fuzz(func(t *testing.T, users bool, limit, offset, persona string) {
		path := "/v1/items"
		if users {
			path = "/v1/agents"
		}
		// The values escaped, as a client sends them ("" leaves one out).
		q := url.Values{}
		for k, v := range map[string]string{"limit": limit, "offset": offset, "persona": persona} {
			if v != "" {
				q.Set(k, v)
			}
		}
		query := q.Encode()
		resp, err := ts.Client().Get(ts.URL + path + "?" + query)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			var e errorBody
			if resp.StatusCode >= 500 || json.Unmarshal(data, &e) != nil || e.Error.Message == "" {
				t.Fatalf("GET %s?%s: status %d: %s", path, query, resp.StatusCode, data)
			}
			return
		}
		var p listResponse[UserInfo] // items decode too (persona 0)
		if err := json.Unmarshal(data, &p); err != nil {
			t.Fatalf("GET %s?%s: %v: %s", path, query, err, data)
		}
		want := min(max(p.Total-p.Offset, 0), len(p.Data))
		if p.Object != "list" || p.Total > n || p.Offset < 0 || len(p.Data) != want || p.HasMore != (p.Offset+len(p.Data) < p.Total) {
			t.Fatalf("GET %s?%s: inconsistent page %+v", path, query, p)
		}
		if l, err := strconv.Atoi(limit); err == nil && len(p.Data) > l {
			t.Fatalf("GET %s?%s: %d entries past the limit", path, query, len(p.Data))
		}
	})
}
