package synth

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/usersim/usersim/dataset"
	"github.com/usersim/usersim/internal/atomicfile"
)

// TruthFile is the name of the truth file beside the MovieLens files.
const TruthFile = "truth.json"

// Write writes the world to dir in MovieLens-1M layout — movies.dat
// (ISO-8859-1), users.dat and ratings.dat — plus truth.json. dir is created
// if needed; each file is written to a temporary name, synced and renamed,
// truth.json last, so a reader never sees a half-written file.
func (w *World) Write(dir string) error {
	d := w.Dataset
	if err := w.check(); err != nil {
		return fmt.Errorf("write world: %w", err)
	}
	if r := &d.Ratings; !d.HasTime() || len(r.Time) != r.Len() || len(r.Item) != r.Len() || len(r.Value) != r.Len() {
		return fmt.Errorf("write world: ratings need user, item, value and time columns of equal length")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write world: %w", err)
	}
	occ := make(map[string]int, len(occupationNames))
	for k, name := range occupationNames {
		occ[name] = k
	}

	var b bytes.Buffer
	for i := range d.Items {
		it := &d.Items[i]
		line := it.ID + "::" + it.Title + " (" + strconv.Itoa(it.Year) + ")::" + strings.Join(it.Genres, "|")
		if err := appendLatin1(&b, line); err != nil {
			return fmt.Errorf("write world: movie %s: %w", it.ID, err)
		}
		b.WriteByte('\n')
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, "movies.dat"), b.Bytes(), 0o644); err != nil {
		return err
	}

	b.Reset()
	for u := range d.Users {
		us := &d.Users[u]
		code, ok := occ[us.Occupation]
		if !ok {
			return fmt.Errorf("write world: user %s: occupation %q is not an ml-1m occupation", us.ID, us.Occupation)
		}
		fmt.Fprintf(&b, "%s::%s::%d::%d::%s\n", us.ID, us.Gender, us.Age, code, us.Zip)
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, "users.dat"), b.Bytes(), 0o644); err != nil {
		return err
	}

	b.Reset()
	r := &d.Ratings
	b.Grow(r.Len() * 24)
	var num []byte
	for k := range r.Len() {
		num = num[:0]
		num = append(num, d.Users[r.User[k]].ID...)
		num = append(num, "::"...)
		num = append(num, d.Items[r.Item[k]].ID...)
		num = append(num, "::"...)
		num = strconv.AppendFloat(num, float64(r.Value[k]), 'f', -1, 32)
		num = append(num, "::"...)
		num = strconv.AppendInt(num, r.Time[k], 10)
		num = append(num, '\n')
		b.Write(num)
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, "ratings.dat"), b.Bytes(), 0o644); err != nil {
		return err
	}

	js, err := json.MarshalIndent(&w.Truth, "", " ")
	if err != nil {
		return fmt.Errorf("write world: %w", err)
	}
	return atomicfile.WriteFile(filepath.Join(dir, TruthFile), append(js, '\n'), 0o644)
}

// appendLatin1 writes s, a UTF-8 string, as ISO-8859-1.
func appendLatin1(b *bytes.Buffer, s string) error {
	for _, c := range s {
		if c > 0xff || c == utf8.RuneError {
			return fmt.Errorf("%q is not representable in ISO-8859-1", c)
		}
		b.WriteByte(byte(c))
	}
	return nil
}

// Load reads a world that Write wrote: the MovieLens files through
// dataset.LoadML1M and the truth from truth.json. The truth's users and items
// are matched to the dataset by ID, and the dataset takes the world's name.
func Load(dir string) (*World, error) {
	d, err := dataset.LoadML1M(dir)
	if err != nil {
		return nil, fmt.Errorf("load world: %w", err)
	}
	path := filepath.Join(dir, TruthFile)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load world: %w", err)
	}
	var t Truth
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		return nil, fmt.Errorf("load world: %s: %w", path, err)
	}
	if err := reorder(d, &t); err != nil {
		return nil, fmt.Errorf("load world: %s: %w", path, err)
	}
	d.Name = t.Config.Name
	if d.Name == "" {
		d.Name = "synthetic"
	}
	w := &World{Dataset: d, Truth: t}
	if err := w.check(); err != nil {
		return nil, fmt.Errorf("load world: %s: %w", path, err)
	}
	return w, nil
}

// reorder puts the truth's users and items in the dataset's index order.
func reorder(d *dataset.Dataset, t *Truth) error {
	if len(t.Users) != d.NumUsers() || len(t.Items) != d.NumItems() {
		return fmt.Errorf("truth has %d users and %d items, the MovieLens files %d and %d",
			len(t.Users), len(t.Items), d.NumUsers(), d.NumItems())
	}
	users := slices.Clone(t.Users)
	for _, u := range users {
		k, ok := d.UserIndex(u.ID)
		if !ok {
			return fmt.Errorf("user %q is not in users.dat", u.ID)
		}
		t.Users[k] = u
	}
	items := slices.Clone(t.Items)
	for _, it := range items {
		k, ok := d.ItemIndex(it.ID)
		if !ok {
			return fmt.Errorf("item %q is not in movies.dat", it.ID)
		}
		t.Items[k] = it
	}
	// Every slot must have been filled by exactly one ID.
	for k := range t.Users {
		if t.Users[k].ID != d.Users[k].ID {
			return fmt.Errorf("user %q appears twice", t.Users[k].ID)
		}
	}
	for k := range t.Items {
		if t.Items[k].ID != d.Items[k].ID {
			return fmt.Errorf("item %q appears twice", t.Items[k].ID)
		}
	}
	return nil
}
