package dataset

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"io"
)

// DuplicatePolicy says what a loader does when a user rated the same item on
// two lines.
type DuplicatePolicy int

const (
	// DuplicateError rejects the file, naming both lines. MovieLens files have
	// no duplicates, so the MovieLens loaders always use it.
	DuplicateError DuplicatePolicy = iota
	// DuplicateKeepLast keeps the rating that comes last in the file.
	DuplicateKeepLast
)

// ratingsFormat describes a delimited ratings file of MovieLens kind:
// user, item, rating and optionally a Unix timestamp, in that order.
type ratingsFormat struct {
	sep        []byte
	minFields  int // 3: timestamp optional; 4: required
	maxFields  int
	header     []byte // expected first line, if any (e.g. ml-latest's CSV header)
	csvQuoting bool   // a line holding '"' is parsed with encoding/csv
}

// ratingsTarget is where parsed rows go and how ids resolve.
type ratingsTarget struct {
	d          *Dataset
	users      *idTable
	items      *idTable
	usersFixed bool // users come from a metadata file; others are errors
	sizeHint   int64
	lines      lineMap
}

// parseRatings reads a MovieLens-style ratings file into t.d. Every row of a
// file must have the same number of fields.
func parseRatings(ctx context.Context, r io.Reader, file string, f ratingsFormat, t *ratingsTarget) error {
	d := t.d
	ls := newLines(ctx, r, file)
	fieldBuf := make([][]byte, 0, f.maxFields+1)
	nf := 0 // field count fixed by the first row
	rows := 0
	var lineBytes int64 // bytes of the data lines so far
	for {
		line, ok := ls.next()
		if !ok {
			break
		}
		if err := ls.cancelled(); err != nil {
			return err
		}
		if f.header != nil && ls.n == 1 {
			if !bytes.Equal(bytes.TrimPrefix(line, []byte("\ufeff")), f.header) {
				return perrf(file, 1, "", "header %q, want %q", line, f.header)
			}
			continue
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var fields [][]byte
		if f.csvQuoting && bytes.IndexByte(line, '"') >= 0 {
			rec, err := csv.NewReader(bytes.NewReader(line)).Read()
			if err != nil {
				return perr(file, ls.n, "", err)
			}
			fields = fieldBuf[:0]
			for _, s := range rec {
				fields = append(fields, []byte(s))
			}
		} else {
			fields = split(line, f.sep, fieldBuf)
		}
		if nf == 0 {
			if len(fields) < f.minFields || len(fields) > f.maxFields {
				return perrf(file, ls.n, "", "%w: %d fields in %q, want %s", ErrFieldCount, len(fields), line, wantFields(f))
			}
			nf = len(fields)
			resize(&d.Ratings, 4096, nf == 4) // then sized from the first 4096 lines

		} else if len(fields) != nf {
			return perrf(file, ls.n, "", "%w: %d fields in %q; earlier lines have %d", ErrFieldCount, len(fields), line, nf)
		}
		uid, err := parseID(fields[0])
		if err != nil {
			return perr(file, ls.n, "user", err)
		}
		u, ok := t.users.get(uid)
		if !ok {
			if t.usersFixed {
				return perrf(file, ls.n, "user", "%w: user %d is not in the users file", ErrUnknownID, uid)
			}
			u = d.AddUser(User{ID: string(fields[0])})
			t.users.put(uid, u)
		}
		iid, err := parseID(fields[1])
		if err != nil {
			return perr(file, ls.n, "item", err)
		}
		it, ok := t.items.get(iid)
		if !ok {
			return perrf(file, ls.n, "item", "%w: movie %d is not in the movies file", ErrUnknownID, iid)
		}
		v, err := parseRating(fields[2], d.Scale)
		if err != nil {
			return perr(file, ls.n, "rating", err)
		}
		var ts int64
		if nf == 4 {
			if ts, err = parseUnix(fields[3]); err != nil {
				return perr(file, ls.n, "timestamp", err)
			}
		}
		lineBytes += int64(len(line) + 1)
		if rows == 4096 {
			// Lines grow longer as ids do: estimate again from more of them.
			resize(&d.Ratings, estimateRows(t.sizeHint, lineBytes, rows), nf == 4)
		}
		t.lines.add(rows, ls.n)
		d.Append(u, it, v, ts, nf == 4)
		rows++
	}
	if err := ls.err(); err != nil {
		return err
	}
	if rows == 0 {
		return perr(file, 0, "", ErrEmpty)
	}
	return nil
}

func wantFields(f ratingsFormat) string {
	if f.minFields == f.maxFields {
		return fmt.Sprint(f.minFields)
	}
	return fmt.Sprintf("%d or %d", f.minFields, f.maxFields)
}

// estimateRows guesses the number of rows of a file of size bytes whose
// first rows took lineBytes, with a quarter more for lines that grow longer
// further down (ids gain digits); 0 when size is unknown.
func estimateRows(size, lineBytes int64, rows int) int {
	if size <= 0 || lineBytes <= 0 {
		return 0
	}
	n := size * int64(rows) / lineBytes
	return int(min(n+n/4+16, 1<<31-1))
}

// resize sets the capacity of the rating columns to n rows (when n > 0 and
// the columns hold fewer), so that they grow at most rarely.
func resize(r *Ratings, n int, withTime bool) {
	if n <= 0 || n < r.Len() {
		return
	}
	r.User = append(make([]int32, 0, n), r.User...)
	r.Item = append(make([]int32, 0, n), r.Item...)
	r.Value = append(make([]float32, 0, n), r.Value...)
	if withTime {
		r.Time = append(make([]int64, 0, n), r.Time...)
	}
}

// dedupe finds (user, item) pairs rated twice. With DuplicateError it
// returns an error naming both lines; with DuplicateKeepLast it drops the
// earlier rows.
func dedupe(d *Dataset, file string, lm *lineMap, policy DuplicatePolicy) error {
	ix := d.UserRows()
	mark := make([]int32, len(d.Items)) // user+1 who last rated the item
	pos := make([]int32, len(d.Items))  // and on which row
	var drop []bool
	for u := range int32(ix.Groups()) {
		for _, r := range ix.Of(u) {
			it := d.Ratings.Item[r]
			if mark[it] == u+1 {
				if policy != DuplicateKeepLast {
					return perrf(file, lm.line(int(r)), "", "%w rating: user %s rated item %s already on line %d",
						ErrDuplicate, d.Users[u].ID, d.Items[it].ID, lm.line(int(pos[it])))
				}
				if drop == nil {
					drop = make([]bool, d.Ratings.Len())
				}
				drop[pos[it]] = true
			}
			mark[it], pos[it] = u+1, r
		}
	}
	if drop == nil {
		return nil
	}
	rt := &d.Ratings
	w := 0
	for r := range rt.User {
		if drop[r] {
			continue
		}
		rt.User[w], rt.Item[w], rt.Value[w] = rt.User[r], rt.Item[r], rt.Value[r]
		if rt.Time != nil {
			rt.Time[w] = rt.Time[r]
		}
		w++
	}
	rt.User, rt.Item, rt.Value = rt.User[:w], rt.Item[:w], rt.Value[:w]
	if rt.Time != nil {
		rt.Time = rt.Time[:w]
	}
	return nil
}
