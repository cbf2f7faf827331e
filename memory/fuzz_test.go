package memory

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzReadInteractions: any file content gives records or an error naming
// the file, never a panic; what is read writes back and reads the same.
func FuzzReadInteractions(f *testing.F) {
	f.Add([]byte(`{"user":"1","item":"10","rating":4,"order":0,"reason":"I love Drama films"}` + "\n"))
	f.Add([]byte("\n\n{}\n"))
	f.Add([]byte(`{"user":"1","item":"2","order":-3}`))
	f.Add([]byte(`[1,2]` + "\n" + `{"user":`))
	f.Fuzz(func(t *testing.T, b []byte) {
		dir := t.TempDir()
		path := filepath.Join(dir, "i.jsonl")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		ms, err := ReadInteractions(path)
		if err != nil {
			return
		}
		out := filepath.Join(dir, "o.jsonl")
		if err := WriteInteractions(out, ms); err != nil {
			t.Fatal(err)
		}
		back, err := ReadInteractions(out)
		if err != nil || len(back) != len(ms) {
			t.Fatalf("rewrite: %d records, %v", len(back), err)
		}
	})
}
