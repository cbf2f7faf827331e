package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/usersim/usersim/llm"
	"github.com/usersim/usersim/persona"
)

func TestPersonasCommand(t *testing.T) {
	ws := t.TempDir()
	if out, err := runCLI(t, "personas", "--workspace", ws); err == nil || !strings.Contains(err.Error(), "usersim distill") {
		t.Fatalf("no profiles: %v\n%s", err, out)
	}
	if out, err := runCLI(t, "distill", "--workspace", ws); err != nil {
		t.Fatalf("distill: %v\n%s", err, out)
	}
	out, err := runCLI(t, "personas", "--workspace", ws, "--dataset", "synthetic", "--compare")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{"K = 4 by elbow", "elbow, chosen", "adjusted Rand index", "embedders compared", "tfidf", "Persona 3:", "% male"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	a, err := persona.LoadAssignments(ws)
	if err != nil || a.K != 4 || a.Embedder != persona.DefaultEmbedder {
		t.Fatalf("assignments %+v, %v", a, err)
	}
	// The same inputs again: skipped.
	out, err = runCLI(t, "personas", "--workspace", ws, "--dataset", "synthetic", "--compare")
	if err != nil || !strings.Contains(out, "not recomputed") {
		t.Errorf("rerun: %v\n%s", err, out)
	}
	// Other options: recomputed, JSON output.
	out, err = runCLI(t, "personas", "--workspace", ws, "--embedder", "tfidf", "--k", "3", "--json")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var s persona.Summary
	if err := json.Unmarshal([]byte(out), &s); err != nil || s.K != 3 || s.Embedder != "tfidf" || s.Selection.Method != "fixed" || len(s.Personas) != 3 {
		t.Errorf("JSON summary %+v, %v", s, err)
	}
	// An OpenAI-compatible embeddings server.
	var inputs int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req llm.EmbeddingRequest
		if r.URL.Path != "/v1/embeddings" || json.NewDecoder(r.Body).Decode(&req) != nil || req.Model != "emb" {
			http.Error(w, "bad request", 400)
			return
		}
		resp := llm.EmbeddingResponse{Object: "list", Model: req.Model}
		for i, in := range req.Input {
			inputs++
			v := []float32{float32(strings.Count(in, "love")), float32(strings.Count(in, "Drama")), float32(len(in) % 7), 1}
			resp.Data = append(resp.Data, llm.Embedding{Index: i, Embedding: v})
		}
		json.NewEncoder(w).Encode(resp)
	}))
	defer srv.Close()
	out, err = runCLI(t, "personas", "--workspace", ws, "--embedder", "openai", "--llm-url", srv.URL+"/v1", "--llm-model", "emb", "--k", "2")
	if err != nil || !strings.Contains(out, "embedder openai:emb, K = 2") || inputs < 200 {
		t.Errorf("openai embedder: %v, %d inputs\n%s", err, inputs, out)
	}
	for _, args := range [][]string{
		{"--k-range", "5:2"},
		{"--k-range", "x"},
		{"--k", "-1"},
		{"--embedder", "nope"},
		{"--embedder", "openai"},
		{"--dataset", "synthetic", "--data-dir", filepath.Join(ws, "missing")},
	} {
		if out, err := runCLI(t, append([]string{"personas", "--workspace", ws}, args...)...); err == nil {
			t.Errorf("%v: no error\n%s", args, out)
		}
	}
}
