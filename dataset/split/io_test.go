package split

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/usersim/usersim/dataset"
)

func TestSaveLoadRoundTrip(t *testing.T) {
	d := build(counts(400, 50, 100, 150, 200, 250), true, distinctTimes)
	paper, err := Paper(d, PaperOptions{Seed: 9, SampledOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	random, err := Random(d, 0.1, 4)
	if err != nil {
		t.Fatal(err)
	}
	folds, err := KFold(d, 5, 4)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, s := range []*Split{paper, random, folds[3]} {
		path := filepath.Join(dir, s.Protocol+".split")
		if err := Save(path, s, d); err != nil {
			t.Fatal(err)
		}
		got, err := Load(path, d)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, s) {
			t.Errorf("%s: loaded split differs from the saved one", s.Protocol)
		}
		st, _ := os.Stat(path)
		if rows := len(s.Train) + len(s.Test); st.Size() > int64(rows) {
			t.Errorf("%s: %d bytes for %d rows; want well under a byte per row", s.Protocol, st.Size(), rows)
		}
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if strings.Contains(e.Name(), ".tmp") {
				t.Errorf("temporary file %s left behind", e.Name())
			}
		}
	}
}

func TestLoadRejectsOtherDatasets(t *testing.T) {
	d := build(counts(40, 10, 12), true, distinctTimes)
	s, err := Random(d, 0.2, 1)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "s.bin")
	if err := Save(path, s, d); err != nil {
		t.Fatal(err)
	}
	renamed := build(counts(40, 10, 12), true, distinctTimes)
	renamed.Name = "other"
	oneRating := build(counts(40, 10, 12), true, distinctTimes)
	oneRating.Ratings.Value[17]++
	noTime := build(counts(40, 10, 12), false, distinctTimes)
	bigger := build(counts(41, 10, 12), true, distinctTimes)
	for _, tc := range []struct {
		name string
		d    any
		want string
	}{
		{"renamed", renamed, `name "test" vs "other"`},
		{"one rating changed", oneRating, "different ratings"},
		{"no timestamps", noTime, "timestamps"},
		{"more users", bigger, "40 users"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(path, tc.d.(*dataset.Dataset))
			if !errors.Is(err, ErrDatasetMismatch) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrDatasetMismatch mentioning %q", err, tc.want)
			}
		})
	}
	if _, err := Load(path, d); err != nil {
		t.Fatalf("the original dataset: %v", err)
	}
}

func TestLoadCorrupt(t *testing.T) {
	d := build(counts(40, 10, 12), true, distinctTimes)
	s, err := Random(d, 0.2, 1)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "s.bin")
	if err := Save(path, s, d); err != nil {
		t.Fatal(err)
	}
	good, _ := os.ReadFile(path)
	// The raw (uncompressed) payload, to corrupt inside the gzip layer.
	zr, _ := gzip.NewReader(bytes.NewReader(good))
	var raw bytes.Buffer
	raw.ReadFrom(zr)
	regzip := func(b []byte) []byte {
		var out bytes.Buffer
		zw := gzip.NewWriter(&out)
		zw.Write(b)
		zw.Close()
		return out.Bytes()
	}
	payload := raw.Bytes()
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "not a usersim split"},
		{"not gzip", []byte("UserID::MovieID\n"), "not a usersim split"},
		{"truncated gzip", good[:len(good)/2], "unexpected EOF"},
		{"bad magic", regzip(append([]byte("usersim splot\n"), payload[len(magic):]...)), "bad magic"},
		{"truncated rows", regzip(payload[:len(payload)-3]), "unexpected EOF"},
		{"trailing data", regzip(append(bytes.Clone(payload), 1)), "trailing"},
		{"zero gap", regzip(append(bytes.Clone(payload[:len(payload)-1]), 0)), "corrupt value"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, tc.name)
			os.WriteFile(p, tc.data, 0o644)
			_, err := Load(p, d)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), p) {
				t.Fatalf("got %v, want an error naming the file and containing %q", err, tc.want)
			}
		})
	}
	if _, err := Load(filepath.Join(dir, "missing"), d); err == nil {
		t.Error("a missing file loaded")
	}
}

// FuzzDecode feeds arbitrary split-file contents (seeded with a valid one)
// to the decoder as Load uses it: it must return an error or a split that
// validates against the dataset, never panic or allocate without bound.
func FuzzDecode(f *testing.F) {
	d := build(counts(20, 6, 9), true, distinctTimes)
	s, err := Paper(d, PaperOptions{MinRatings: 6, MaxRatings: 9, NumUsers: 5})
	if err != nil {
		f.Fatal(err)
	}
	path := filepath.Join(f.TempDir(), "s.bin")
	if err := Save(path, s, d); err != nil {
		f.Fatal(err)
	}
	good, _ := os.ReadFile(path)
	zr, _ := gzip.NewReader(bytes.NewReader(good))
	var raw bytes.Buffer
	raw.ReadFrom(zr)
	f.Add(raw.Bytes())
	f.Add([]byte(magic))
	want := FingerprintOf(d)
	f.Fuzz(func(t *testing.T, payload []byte) {
		got, err := decodeRaw(bufio.NewReader(bytes.NewReader(payload)), func(h *header) error {
			if diff := h.Dataset.diff(want); diff != "" {
				return ErrDatasetMismatch
			}
			return nil
		})
		if err == nil {
			// Load validates what decode returns; that must not panic either.
			_ = got.Validate(d)
		}
	})
}
