package split

import (
	"bufio"
	"compress/gzip"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"

	"github.com/usersim/usersim/dataset"
	"github.com/usersim/usersim/internal/atomicfile"
)

// Fingerprint identifies a dataset's ratings: its name, counts and a SHA-256
// of the rating columns (user, item, value and time of every row, in row
// order, little-endian). A split is only valid for the dataset it was made
// from.
type Fingerprint struct {
	Name    string `json:"name"`
	Users   int    `json:"users"`
	Items   int    `json:"items"`
	Ratings int    `json:"ratings"`
	HasTime bool   `json:"has_time"`
	SHA256  string `json:"sha256"`
}

// FingerprintOf computes d's fingerprint.
func FingerprintOf(d *dataset.Dataset) Fingerprint {
	r := &d.Ratings
	h := sha256.New()
	const chunk = 8192
	buf := make([]byte, 0, 8*chunk)
	flush := func() { h.Write(buf); buf = buf[:0] }
	for k, u := range r.User {
		buf = binary.LittleEndian.AppendUint32(buf, uint32(u))
		if (k+1)%chunk == 0 {
			flush()
		}
	}
	flush()
	for k, i := range r.Item {
		buf = binary.LittleEndian.AppendUint32(buf, uint32(i))
		if (k+1)%chunk == 0 {
			flush()
		}
	}
	flush()
	for k, v := range r.Value {
		buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
		if (k+1)%chunk == 0 {
			flush()
		}
	}
	flush()
	for k, t := range r.Time {
		buf = binary.LittleEndian.AppendUint64(buf, uint64(t))
		if (k+1)%chunk == 0 {
			flush()
		}
	}
	flush()
	return Fingerprint{
		Name:    d.Name,
		Users:   d.NumUsers(),
		Items:   d.NumItems(),
		Ratings: r.Len(),
		HasTime: d.HasTime(),
		SHA256:  hex.EncodeToString(h.Sum(nil)),
	}
}

// diff describes how f differs from g, or returns "".
func (f Fingerprint) diff(g Fingerprint) string {
	var d []string
	if f.Name != g.Name {
		d = append(d, fmt.Sprintf("name %q vs %q", f.Name, g.Name))
	}
	if f.Users != g.Users || f.Items != g.Items || f.Ratings != g.Ratings {
		d = append(d, fmt.Sprintf("%d users, %d items, %d ratings vs %d, %d, %d", f.Users, f.Items, f.Ratings, g.Users, g.Items, g.Ratings))
	}
	if f.HasTime != g.HasTime {
		d = append(d, fmt.Sprintf("timestamps %v vs %v", f.HasTime, g.HasTime))
	}
	if len(d) == 0 && f.SHA256 != g.SHA256 {
		d = append(d, "same counts but different ratings (sha256 "+short(f.SHA256)+" vs "+short(g.SHA256)+")")
	}
	return strings.Join(d, "; ")
}

func short(h string) string { return h[:min(len(h), 12)] }

// The file format: a gzip stream holding the magic line, a uvarint length
// and a JSON header (format version, the dataset's fingerprint, the split's
// parameters and the lengths of its lists), then the users, training rows
// and test rows, each as the first value and the gaps between successive
// values in unsigned varints. Runs of consecutive rows become runs of 1s,
// which gzip folds to almost nothing: MovieLens-25M's splits take a few MB.
const (
	magic         = "usersim split\n"
	formatVersion = 1
)

type header struct {
	Version  int         `json:"version"`
	Dataset  Fingerprint `json:"dataset"`
	Split    Split       `json:"split"` // without its lists
	NumUsers int         `json:"num_users"`
	NumTrain int         `json:"num_train"`
	NumTest  int         `json:"num_test"`
}

// Save writes s, made from d, to path atomically (a synced temporary file in
// the same directory, then a rename). It validates s against d first.
func Save(path string, s *Split, d *dataset.Dataset) error {
	if err := s.Validate(d); err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	h := header{Version: formatVersion, Dataset: FingerprintOf(d), Split: *s,
		NumUsers: len(s.Users), NumTrain: len(s.Train), NumTest: len(s.Test)}
	h.Split.Users, h.Split.Train, h.Split.Test = nil, nil, nil
	js, err := json.Marshal(h)
	if err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	err = atomicfile.Write(path, 0o644, func(out io.Writer) error {
		zw, err := gzip.NewWriterLevel(out, gzip.BestSpeed)
		if err != nil {
			return err
		}
		w := bufio.NewWriterSize(zw, 1<<16)
		w.WriteString(magic)
		var tmp [binary.MaxVarintLen64]byte
		w.Write(binary.AppendUvarint(tmp[:0], uint64(len(js))))
		w.Write(js)
		for _, list := range [][]int32{s.Users, s.Train, s.Test} {
			prev := int64(-1)
			for _, v := range list {
				w.Write(binary.AppendUvarint(tmp[:0], uint64(int64(v)-prev)))
				prev = int64(v)
			}
		}
		if err := w.Flush(); err != nil {
			return err
		}
		return zw.Close()
	})
	if err != nil {
		return fmt.Errorf("save split: %w", err)
	}
	return nil
}

// ErrDatasetMismatch is returned by Load when the split was made from a
// different dataset.
var ErrDatasetMismatch = errors.New("split was made from a different dataset")

// Load reads a split that Save wrote and checks it against d: the dataset
// fingerprint must match (else an error wrapping ErrDatasetMismatch), and the
// rows must be in range, strictly ascending and disjoint.
func Load(path string, d *dataset.Dataset) (*Split, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load split: %w", err)
	}
	defer f.Close()
	want := FingerprintOf(d)
	s, err := decode(bufio.NewReaderSize(f, 1<<16), func(h *header) error {
		if diff := h.Dataset.diff(want); diff != "" {
			return fmt.Errorf("%w: %s", ErrDatasetMismatch, diff)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load split %s: %w", path, err)
	}
	if err := s.Validate(d); err != nil {
		return nil, fmt.Errorf("load split %s: %w", path, err)
	}
	return s, nil
}

// decode reads a split file; check vets the header (the dataset's
// fingerprint) before any list is allocated.
func decode(r io.Reader, check func(*header) error) (*Split, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("not a usersim split file: %w", err)
	}
	return decodeRaw(bufio.NewReaderSize(zr, 1<<16), check)
}

// decodeRaw reads the uncompressed content of a split file.
func decodeRaw(br *bufio.Reader, check func(*header) error) (*Split, error) {
	m := make([]byte, len(magic))
	if _, err := io.ReadFull(br, m); err != nil || string(m) != magic {
		return nil, fmt.Errorf("not a usersim split file (bad magic)")
	}
	n, err := binary.ReadUvarint(br)
	if err != nil || n > 1<<20 {
		return nil, fmt.Errorf("corrupt header length")
	}
	js := make([]byte, n)
	if _, err := io.ReadFull(br, js); err != nil {
		return nil, fmt.Errorf("truncated header: %w", err)
	}
	var h header
	if err := json.Unmarshal(js, &h); err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	if h.Version != formatVersion {
		return nil, fmt.Errorf("format version %d, this usersim reads %d", h.Version, formatVersion)
	}
	if err := check(&h); err != nil {
		return nil, err
	}
	limit := h.Dataset.Ratings
	if h.NumUsers < 0 || h.NumUsers > h.Dataset.Users || h.NumTrain < 0 || h.NumTest < 0 || h.NumTrain > limit || h.NumTest > limit-h.NumTrain {
		return nil, fmt.Errorf("header lists %d users, %d train and %d test rows for a dataset of %d users and %d ratings",
			h.NumUsers, h.NumTrain, h.NumTest, h.Dataset.Users, limit)
	}
	s := h.Split
	lists := []struct {
		name string
		dst  *[]int32
		n    int
	}{{"users", &s.Users, h.NumUsers}, {"train rows", &s.Train, h.NumTrain}, {"test rows", &s.Test, h.NumTest}}
	for _, l := range lists {
		out := make([]int32, l.n)
		prev := int64(-1)
		for k := range out {
			gap, err := binary.ReadUvarint(br)
			if err != nil {
				return nil, fmt.Errorf("%s[%d]: %w", l.name, k, noEOF(err))
			}
			v := prev + int64(gap)
			if gap == 0 || v > math.MaxInt32 {
				return nil, fmt.Errorf("%s[%d]: corrupt value (gap %d after %d)", l.name, k, gap, prev)
			}
			out[k], prev = int32(v), v
		}
		*l.dst = out
	}
	if _, err := br.ReadByte(); err != io.EOF {
		if err == nil {
			return nil, fmt.Errorf("trailing data after the test rows")
		}
		return nil, noEOF(err)
	}
	return &s, nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
