package dataset

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// checkLoad is the invariant of every parser: bad input gives a
// *ParseError, good input a dataset that passes Validate.
func checkLoad(t *testing.T, d *Dataset, err error) {
	t.Helper()
	if err != nil {
		var pe *ParseError
		if !errors.As(err, &pe) {
			t.Fatalf("error is not a *ParseError: %v", err)
		}
		return
	}
	if err := d.Validate(); err != nil {
		t.Fatalf("loaded dataset fails Validate: %v", err)
	}
	if d.Ratings.Len() == 0 {
		t.Fatal("loaded a dataset without ratings")
	}
	for _, it := range d.Items {
		if !utf8.ValidString(it.Title) {
			t.Fatalf("title %q is not UTF-8", it.Title)
		}
	}
}

func FuzzLoadML1M(f *testing.F) {
	f.Add([]byte(tinyMovies), []byte(tinyUsers), []byte("1::1::5::978300760\n2::3::3::978302109\n"))
	f.Add([]byte(tinyMovies), []byte(""), []byte("1::1::5\n1::2::4\r\n"))
	f.Add([]byte("1::MisÃ©rables (1995)::Drama\n"), []byte(""), []byte("1::1::5\n"))
	f.Add([]byte("7::Caf\xe9 (1993)::\n"), []byte("1::F::1::0::0\n"), []byte("1::7::3\n1::7::3\n"))
	f.Fuzz(func(t *testing.T, movies, users, ratings []byte) {
		in := ml1mFiles{
			movies: movies, moviesName: "movies.dat", usersName: "users.dat",
			ratings: bytes.NewReader(ratings), ratingsName: "ratings.dat",
		}
		if len(users) > 0 {
			in.users = users
		}
		d, err := parseML1M(context.Background(), in)
		checkLoad(t, d, err)
	})
}

func FuzzLoadML100K(f *testing.F) {
	f.Add([]byte("1|Toy Story (1995)|01-Jan-1995||http://x|0|1|1\n2|Caf\xe9 (1996)|01-Jan-1996||u|0|0|1\n"),
		[]byte("unknown|0\nAction|1\nDrama|2\n"), []byte("1|24|M|technician|85711\n"),
		[]byte("1\t1\t3\t881250949\n1\t2\t5\t881250950\n"))
	f.Add([]byte("1|x|||u|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|1\n"), []byte(""), []byte(""), []byte("5\t1\t2\t0\n"))
	f.Fuzz(func(t *testing.T, item, genre, user, data []byte) {
		in := ml100kFiles{
			item: item, itemName: "u.item", genreName: "u.genre", uName: "u.user",
			data: bytes.NewReader(data), dataName: "u.data",
		}
		if len(genre) > 0 {
			in.genre = genre
		}
		if len(user) > 0 {
			in.user = user
		}
		d, err := parseML100K(context.Background(), in)
		checkLoad(t, d, err)
	})
}

func FuzzLoadMLLatest(f *testing.F) {
	f.Add([]byte(latestMovies), []byte(latestRatings))
	f.Add([]byte("movieId,title,genres\n1,\"A, The \"\"B\"\" (2001)\",Drama\n"), []byte("userId,movieId,rating,timestamp\n\"1\",1,0.5,1\n"))
	f.Fuzz(func(t *testing.T, movies, ratings []byte) {
		d, err := parseMLLatest(context.Background(), movies, "movies.csv", bytes.NewReader(ratings), "ratings.csv", 0)
		checkLoad(t, d, err)
	})
}

func FuzzLoadCSV(f *testing.F) {
	f.Add([]byte("uid,sku,score,ts\nalice,A-1,7,1\nbob,A-1,10,2\nalice,A-1,9,3\n"), true, byte(','), true)
	f.Add([]byte("u1\ti1\t3\nu2\ti1\t4.5\n"), false, byte('\t'), false)
	f.Fuzz(func(t *testing.T, data []byte, header bool, comma byte, keepLast bool) {
		m := CSVMapping{
			User: Column{Index: 0}, Item: Column{Index: 1}, Rating: Column{Index: 2},
			Header: header, Scale: Scale{Min: 1, Max: 10, Step: 0.5},
		}
		if header {
			m.User, m.Item, m.Rating = Column{Name: "uid"}, Column{Name: "sku"}, Column{Name: "score"}
			m.Time = &Column{Name: "ts"}
		}
		if c := rune(comma); c != '\r' && c != '\n' && c != '"' && c != 0 && c < utf8.RuneSelf {
			m.Comma = c
		}
		if keepLast {
			m.Duplicates = DuplicateKeepLast
		}
		d, err := parseCSV(context.Background(), bytes.NewReader(data), "in.csv", m)
		checkLoad(t, d, err)
		if err == nil {
			// No (user, item) pair twice after loading.
			seen := map[[2]int32]bool{}
			for r := range d.Ratings.User {
				k := [2]int32{d.Ratings.User[r], d.Ratings.Item[r]}
				if seen[k] {
					t.Fatalf("pair %v loaded twice", k)
				}
				seen[k] = true
			}
		}
	})
}

func FuzzDecodeText(f *testing.F) {
	f.Add([]byte("1::Caf\xe9 (1993)::Comedy\n"))
	f.Add([]byte("1::Café (1993)::Comedy\n"))
	f.Add([]byte("1::CafÃ© (1993)::Comedy\n2::Caf\xe9\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := decodeText(data, "f")
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || !errors.Is(err, ErrEncoding) {
				t.Fatalf("error %v is not an encoding ParseError", err)
			}
			return
		}
		if !utf8.Valid(out) {
			t.Fatalf("output %q is not UTF-8", out)
		}
		if isASCII(data) && !bytes.Equal(out, data) {
			t.Fatalf("ASCII changed: %q -> %q", data, out)
		}
	})
}

func FuzzSplitTitle(f *testing.F) {
	for _, s := range []string{"Toy Story (1995)", "Matrix, The (1999)", "Associate, The (L'Associe)(1982)", "x, L' (2000)", "(1)", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		title, year := SplitTitle(s)
		if year < 0 || year > 9999 {
			t.Fatalf("year %d", year)
		}
		if year > 0 && !strings.Contains(s, "("+strings.Repeat("0", 4-len(itoa(year)))+itoa(year)+")") {
			t.Fatalf("year %d not in %q", year, s)
		}
		if len(title) > len(s) {
			t.Fatalf("title %q longer than input %q", title, s)
		}
		disp := (Item{Title: title}).DisplayTitle()
		// Moving an article drops ", " and adds at most one space.
		if d := len(title) - len(disp); d != 0 && d != 1 && d != 2 {
			t.Fatalf("DisplayTitle(%q) = %q changes the length by %d", title, disp, d)
		}
	})
}

func itoa(n int) string {
	var b []byte
	for n > 0 || len(b) == 0 {
		b = append([]byte{byte('0' + n%10)}, b...)
		n /= 10
	}
	return string(b)
}
