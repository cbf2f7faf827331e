package dataset

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Column names a CSV column: by its header name when Name is set (the file
// must have a header), otherwise by its zero-based position Index.
type Column struct {
	Name  string `json:"name,omitempty" yaml:"name,omitempty"`
	Index int    `json:"index,omitempty" yaml:"index,omitempty"`
}

func (c Column) String() string {
	if c.Name != "" {
		return fmt.Sprintf("%q", c.Name)
	}
	return fmt.Sprintf("#%d", c.Index)
}

// CSVMapping says how to read a generic ratings CSV file.
type CSVMapping struct {
	User, Item, Rating Column
	// Time is the timestamp column; nil when the file has none.
	Time *Column
	// TimeLayout is a time.Parse layout for Time; empty means Unix seconds.
	TimeLayout string
	// Comma is the field delimiter; 0 means ','.
	Comma rune
	// Comment, if not 0, starts comment lines.
	Comment rune
	// Header says the first line names the columns.
	Header bool
	// Scale declares the rating values; required.
	Scale Scale
	// Duplicates says what to do with a (user, item) pair rated twice.
	Duplicates DuplicatePolicy
	// Name is the dataset's name; empty means the file's base name.
	Name string
}

// LoadCSV loads ratings from a delimited file under mapping m. Users and
// items are numbered in order of first appearance and carry no metadata.
func LoadCSV(path string, m CSVMapping) (*Dataset, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load csv: %w", err)
	}
	defer f.Close()
	if m.Name == "" {
		m.Name = strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	}
	return parseCSV(context.Background(), f, path, m)
}

func parseCSV(ctx context.Context, in io.Reader, file string, m CSVMapping) (*Dataset, error) {
	if !(m.Scale.Max > m.Scale.Min) || m.Scale.Step < 0 {
		return nil, fmt.Errorf("load csv %s: mapping declares no valid rating scale (%v)", file, m.Scale)
	}
	r := csv.NewReader(in)
	r.ReuseRecord = true
	if m.Comma != 0 {
		r.Comma = m.Comma
	}
	r.Comment = m.Comment
	d := &Dataset{Name: m.Name, Scale: m.Scale}
	var (
		cols   [4]int // user, item, rating, time (-1 = none)
		lm     lineMap
		rows   int
		header []string
	)
	resolve := func(c Column, what string) (int, error) {
		if c.Name == "" {
			if c.Index < 0 {
				return 0, fmt.Errorf("%s column index %d is negative", what, c.Index)
			}
			return c.Index, nil
		}
		if header == nil {
			return 0, fmt.Errorf("%s column %s named but the mapping says the file has no header", what, c)
		}
		for i, h := range header {
			if h == c.Name {
				return i, nil
			}
		}
		return 0, fmt.Errorf("%s column %s not in header %q", what, c, header)
	}
	first := true
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, csvErr(file, err)
		}
		line, _ := r.FieldPos(0)
		if line&0xFFFF == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		if first {
			first = false
			if m.Header {
				header = append([]string(nil), rec...)
				header[0] = strings.TrimPrefix(header[0], "\ufeff")
			}
			var err error
			spec := [4]*Column{&m.User, &m.Item, &m.Rating, m.Time}
			names := [4]string{"user", "item", "rating", "time"}
			for k, c := range spec {
				cols[k] = -1
				if c == nil {
					continue
				}
				if cols[k], err = resolve(*c, names[k]); err != nil {
					return nil, perr(file, line, "", err)
				}
				if cols[k] >= len(rec) {
					return nil, perrf(file, line, "", "%s column %s is beyond the %d fields of the first line", names[k], *c, len(rec))
				}
				for j := range k {
					if cols[j] == cols[k] {
						return nil, perrf(file, line, "", "%s and %s map to the same column %d", names[j], names[k], cols[k])
					}
				}
			}
			if m.Header {
				continue
			}
		}
		uid, iid := rec[cols[0]], rec[cols[1]]
		if uid == "" {
			return nil, perrf(file, line, "user", "empty id")
		}
		if iid == "" {
			return nil, perrf(file, line, "item", "empty id")
		}
		u, ok := d.UserIndex(uid)
		if !ok {
			u = d.AddUser(User{ID: strings.Clone(uid)})
		}
		it, ok := d.ItemIndex(iid)
		if !ok {
			it = d.AddItem(Item{ID: strings.Clone(iid)})
		}
		v, err := parseRating([]byte(rec[cols[2]]), m.Scale)
		if err != nil {
			l, _ := r.FieldPos(cols[2])
			return nil, perr(file, l, "rating", err)
		}
		var ts int64
		if cols[3] >= 0 {
			s := strings.TrimSpace(rec[cols[3]])
			if m.TimeLayout == "" {
				ts, err = parseUnix([]byte(s))
			} else {
				var t time.Time
				if t, err = time.Parse(m.TimeLayout, s); err == nil {
					ts = t.Unix()
				}
			}
			if err != nil {
				l, _ := r.FieldPos(cols[3])
				return nil, perr(file, l, "time", err)
			}
		}
		lm.add(rows, line)
		d.Append(u, it, v, ts, cols[3] >= 0)
		rows++
	}
	if rows == 0 {
		return nil, perr(file, 0, "", ErrEmpty)
	}
	if err := dedupe(d, file, &lm, m.Duplicates); err != nil {
		return nil, err
	}
	return d, nil
}
