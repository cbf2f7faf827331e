package dataset

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const (
	latestMovies = "movieId,title,genres\n" +
		"1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy\n" +
		"11,\"American President, The (1995)\",Comedy|Drama|Romance\n" +
		"176601,Black Mirror,(no genres listed)\n" +
		"5,Déjà Vu (1997),Drama\n"
	latestRatings = "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,11,0.5,964981247\n2,176601,5,964982224\n"
)

func TestParseMLLatest(t *testing.T) {
	d, err := parseMLLatest(context.Background(), []byte(latestMovies), "movies.csv", strings.NewReader(latestRatings), "ratings.csv", 0)
	if err != nil {
		t.Fatal(err)
	}
	if d.Scale != HalfStarsFive || d.Ratings.Len() != 3 || d.NumUsers() != 2 || d.NumItems() != 4 || !d.HasTime() {
		t.Fatalf("dataset %+v", d)
	}
	if d.Ratings.Value[1] != 0.5 || d.Ratings.Time[2] != 964982224 {
		t.Errorf("ratings %+v", d.Ratings)
	}
	it := d.Items[1]
	if it.Title != "American President, The" || it.Year != 1995 || it.DisplayTitle() != "The American President" || len(it.Genres) != 3 {
		t.Errorf("quoted title: %+v", it)
	}
	if it := d.Items[2]; it.Title != "Black Mirror" || it.Year != 0 || it.Genres != nil {
		t.Errorf("no year, no genres: %+v", it)
	}
	if d.Items[3].Title != "Déjà Vu" {
		t.Errorf("utf-8 title %q", d.Items[3].Title)
	}

	for _, tc := range []struct {
		name, movies, ratings, file string
		line                        int
		is                          error
	}{
		{"bad header", latestMovies, "user,movie,rating,ts\n1,1,4,1\n", "ratings.csv", 1, nil},
		{"quarter star", latestMovies, "userId,movieId,rating,timestamp\n1,1,4.25,1\n", "ratings.csv", 2, ErrOutOfScale},
		{"above five", latestMovies, "userId,movieId,rating,timestamp\n1,1,4,1\n1,11,5.5,1\n", "ratings.csv", 3, ErrOutOfScale},
		{"unknown movie", latestMovies, "userId,movieId,rating,timestamp\n1,2,4,1\n", "ratings.csv", 2, ErrUnknownID},
		{"truncated", latestMovies, "userId,movieId,rating,timestamp\n1,1,4,1\n1,11\n", "ratings.csv", 3, ErrFieldCount},
		{"header only", latestMovies, "userId,movieId,rating,timestamp\n", "ratings.csv", 0, ErrEmpty},
		{"duplicate", latestMovies, "userId,movieId,rating,timestamp\n1,1,4,1\n2,1,4,1\n1,1,3,2\n", "ratings.csv", 4, ErrDuplicate},
		{"quoted ratings ok but bad", latestMovies, "userId,movieId,rating,timestamp\n\"1\",\"1\",\"x\",\"1\"\n", "ratings.csv", 2, nil},
		{"movies short row", "movieId,title,genres\n1,Toy Story (1995)\n", latestRatings, "movies.csv", 2, ErrFieldCount},
		{"movies unterminated quote", "movieId,title,genres\n1,\"Toy Story (1995),Comedy\n", latestRatings, "movies.csv", 2, nil},
		{"movies bad header", "id,name,genres\n1,T,C\n", latestRatings, "movies.csv", 1, nil},
		{"movies empty", "", latestRatings, "movies.csv", 0, ErrEmpty},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseMLLatest(context.Background(), []byte(tc.movies), "movies.csv", strings.NewReader(tc.ratings), "ratings.csv", 0)
			var pe *ParseError
			if !errors.As(err, &pe) || pe.File != tc.file || pe.Line != tc.line {
				t.Fatalf("err = %v, want %s:%d", err, tc.file, tc.line)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("err = %v, want errors.Is %v", err, tc.is)
			}
		})
	}
	// Quoted fields in ratings.csv are read through encoding/csv.
	d, err = parseMLLatest(context.Background(), []byte(latestMovies), "movies.csv",
		strings.NewReader("userId,movieId,rating,timestamp\r\n\"7\",\"11\",\"3.5\",\"5\"\r\n"), "ratings.csv", 0)
	if err != nil || d.Ratings.Value[0] != 3.5 || d.Users[0].ID != "7" {
		t.Errorf("quoted ratings: %v %+v", err, d)
	}
}

func TestLoadCSV(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "log.tsv")
	data := "# exported\nts\tuid\tsku\tscore\n" +
		"2024-01-02T10:00:00Z\talice\tA-1\t7\n" +
		"2024-01-03T10:00:00Z\tbob\tA-1\t10\n" +
		"2024-01-04T10:00:00Z\talice\tB-2\t1\n" +
		"2024-01-05T10:00:00Z\talice\tA-1\t9\n"
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	m := CSVMapping{
		User: Column{Name: "uid"}, Item: Column{Name: "sku"}, Rating: Column{Name: "score"},
		Time: &Column{Index: 0}, TimeLayout: "2006-01-02T15:04:05Z07:00",
		Comma: '\t', Comment: '#', Header: true, Scale: Scale{Min: 1, Max: 10, Step: 1},
	}
	_, err := LoadCSV(path, m)
	var pe *ParseError
	if !errors.As(err, &pe) || !errors.Is(err, ErrDuplicate) || pe.Line != 6 || !strings.Contains(err.Error(), "line 3") {
		t.Fatalf("duplicate: err = %v, want one at line 6 naming line 3", err)
	}
	m.Duplicates = DuplicateKeepLast
	d, err := LoadCSV(path, m)
	if err != nil {
		t.Fatal(err)
	}
	if d.Name != "log" || d.Ratings.Len() != 3 || d.NumUsers() != 2 || d.NumItems() != 2 {
		t.Fatalf("dataset %+v", d)
	}
	// Alice's first A-1 rating (7) gave way to the last (9); order is kept.
	if got := d.Ratings.Value; got[0] != 10 || got[1] != 1 || got[2] != 9 {
		t.Errorf("values after keep-last = %v, want [10 1 9]", got)
	}
	if d.Ratings.Time[2] != 1704448800 {
		t.Errorf("time %d", d.Ratings.Time[2])
	}
	if err := d.Validate(); err != nil {
		t.Error(err)
	}

	// By position, no header, no time.
	path2 := filepath.Join(dir, "plain.csv")
	os.WriteFile(path2, []byte("u1,i1,3\nu2,i1,4.5\n"), 0o644)
	pos := CSVMapping{User: Column{Index: 0}, Item: Column{Index: 1}, Rating: Column{Index: 2}, Scale: HalfStarsFive}
	if d, err := LoadCSV(path2, pos); err != nil || d.HasTime() || d.Ratings.Value[1] != 4.5 {
		t.Errorf("positional: %v %+v", err, d)
	}

	for _, tc := range []struct {
		name string
		m    CSVMapping
		want string
	}{
		{"no scale", CSVMapping{User: Column{Index: 0}, Item: Column{Index: 1}, Rating: Column{Index: 2}}, "scale"},
		{"same column", CSVMapping{User: Column{Index: 0}, Item: Column{Index: 0}, Rating: Column{Index: 2}, Scale: FiveStars}, "same column"},
		{"beyond fields", CSVMapping{User: Column{Index: 0}, Item: Column{Index: 1}, Rating: Column{Index: 5}, Scale: FiveStars}, "beyond"},
		{"name without header", CSVMapping{User: Column{Name: "u"}, Item: Column{Index: 1}, Rating: Column{Index: 2}, Scale: FiveStars}, "no header"},
		{"out of scale", CSVMapping{User: Column{Index: 0}, Item: Column{Index: 1}, Rating: Column{Index: 2}, Scale: FiveStars}, "plain.csv:2: rating"},
	} {
		if _, err := LoadCSV(path2, tc.m); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to mention %q", tc.name, err, tc.want)
		}
	}
	if _, err := LoadCSV(filepath.Join(dir, "missing.csv"), pos); err == nil || !strings.Contains(err.Error(), "missing.csv") {
		t.Errorf("missing file: %v", err)
	}
	empty := filepath.Join(dir, "empty.csv")
	os.WriteFile(empty, nil, 0o644)
	if _, err := LoadCSV(empty, pos); !errors.Is(err, ErrEmpty) || !strings.Contains(err.Error(), "empty.csv") {
		t.Errorf("empty file: %v", err)
	}
}

func TestLoadUnknownName(t *testing.T) {
	if _, err := Load(context.Background(), "ml-2m", t.TempDir()); err == nil || !strings.Contains(err.Error(), "ml-1m") {
		t.Errorf("err = %v, want it to list the known names", err)
	}
}

func TestValidate(t *testing.T) {
	d := &Dataset{Scale: FiveStars}
	u := d.AddUser(User{ID: "u"})
	it := d.AddItem(Item{ID: "i"})
	d.Append(u, it, 4, 0, false)
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	d.Append(u, 3, 4, 0, false)
	d.Append(u, it, 4.5, 0, false)
	err := d.Validate()
	if err == nil || !strings.Contains(err.Error(), "row 1: item index 3") || !strings.Contains(err.Error(), "row 2: value 4.5") {
		t.Errorf("err = %v", err)
	}
	d.Ratings.Value = d.Ratings.Value[:1]
	if err := d.Validate(); err == nil || !strings.Contains(err.Error(), "length") {
		t.Errorf("err = %v", err)
	}
}

func TestIndex(t *testing.T) {
	d := &Dataset{Scale: FiveStars}
	for _, id := range []string{"a", "b", "c"} {
		d.AddUser(User{ID: id})
		d.AddItem(Item{ID: id})
	}
	rows := [][2]int32{{2, 0}, {0, 1}, {2, 2}, {0, 0}}
	for _, r := range rows {
		d.Append(r[0], r[1], 3, 0, false)
	}
	ix := d.UserRows()
	if ix.Groups() != 3 || ix.Len(1) != 0 || fmt.Sprint(ix.Of(0)) != "[1 3]" || fmt.Sprint(ix.Of(2)) != "[0 2]" {
		t.Errorf("user index %+v", ix)
	}
	if c := d.ItemCounts(); c[0] != 2 || c[1] != 1 || c[2] != 1 {
		t.Errorf("item counts %v", c)
	}
	if c := d.UserCounts(); c[0] != 2 || c[1] != 0 || c[2] != 2 {
		t.Errorf("user counts %v", c)
	}
	// Reindex after building slices by hand.
	d2 := &Dataset{Users: []User{{ID: "x"}, {ID: "y"}}, Items: []Item{{ID: "p"}}}
	if err := d2.Reindex(); err != nil {
		t.Fatal(err)
	}
	if i, ok := d2.UserIndex("y"); !ok || i != 1 {
		t.Errorf("UserIndex(y) = %d %v", i, ok)
	}
	d2.Users = append(d2.Users, User{ID: "x"})
	if err := d2.Reindex(); err == nil {
		t.Error("duplicate user id accepted")
	}
}

func TestEstimateRows(t *testing.T) {
	if n := estimateRows(0, 10, 1); n != 0 {
		t.Errorf("unknown size: %d", n)
	}
	// 1000 lines of 10 bytes: at least 1000, at most a third more.
	if n := estimateRows(10000, 40960, 4096); n < 1000 || n > 1340 {
		t.Errorf("estimate %d", n)
	}
	r := &Ratings{}
	resize(r, 100, true)
	if cap(r.User) != 100 || r.Time == nil || cap(r.Time) != 100 {
		t.Errorf("resize: caps %d %d", cap(r.User), cap(r.Time))
	}
	resize(r, 50, false)
	if cap(r.User) != 50 || r.Len() != 0 {
		t.Errorf("resize down: cap %d", cap(r.User))
	}
}
