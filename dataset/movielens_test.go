package dataset

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/text/encoding/charmap"

	"github.com/usersim/usersim/internal/sharedtest"
)

func TestLoadML1MShared(t *testing.T) {
	dir := sharedtest.Path(t, "data", "ml-1m")
	d, err := Load(context.Background(), "ml-1m", dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := d.Ratings.Len(), 1000209; got != want {
		t.Errorf("ratings = %d, want %d", got, want)
	}
	if got, want := d.NumUsers(), 6040; got != want {
		t.Errorf("users = %d, want %d", got, want)
	}
	if got, want := d.NumItems(), 3883; got != want {
		t.Errorf("movies listed = %d, want %d", got, want)
	}
	if got, want := d.RatedItems(), 3706; got != want {
		t.Errorf("rated movies = %d, want %d", got, want)
	}
	if d.HasTime() {
		t.Error("ratings_no_ts.dat has no timestamps, but HasTime is true")
	}
	if d.Name != "ml-1m" || d.Scale != FiveStars {
		t.Errorf("name %q scale %v", d.Name, d.Scale)
	}
	if err := d.Validate(); err != nil {
		t.Error(err)
	}
	// Histogram from the official file (README of the shared copy: it matches).
	hist := map[float32]int{}
	for _, v := range d.Ratings.Value {
		hist[v]++
	}
	want := map[float32]int{1: 56174, 2: 107557, 3: 261197, 4: 348971, 5: 226310}
	for k, n := range want {
		if hist[k] != n {
			t.Errorf("ratings of %v: %d, want %d", k, hist[k], n)
		}
	}
	items := map[string]struct {
		title string
		year  int
	}{
		"73":   {"Misérables, Les", 1995},
		"1001": {"Associate, The (L'Associe)", 1982},
		"1320": {"Alien³", 1992},
		"2175": {"Déjà Vu", 1997},
		"2571": {"Matrix, The", 1999},
	}
	for id, w := range items {
		i, ok := d.ItemIndex(id)
		if !ok {
			t.Errorf("movie %s missing", id)
			continue
		}
		if it := d.Items[i]; it.Title != w.title || it.Year != w.year {
			t.Errorf("movie %s = %q (%d), want %q (%d)", id, it.Title, it.Year, w.title, w.year)
		}
	}
	if i, _ := d.ItemIndex("2571"); d.Items[i].DisplayTitle() != "The Matrix" {
		t.Errorf("DisplayTitle = %q", d.Items[i].DisplayTitle())
	}
	if i, _ := d.ItemIndex("1"); strings.Join(d.Items[i].Genres, "|") != "Animation|Children's|Comedy" {
		t.Errorf("genres of Toy Story: %q", d.Items[i].Genres)
	}
	u, _ := d.UserIndex("1")
	if got := d.Users[u]; got != (User{ID: "1", Gender: "F", Age: 1, AgeGroup: "Under 18", Occupation: "K-12 student", Zip: "48067"}) {
		t.Errorf("user 1 = %+v", got)
	}
	u, _ = d.UserIndex("2")
	if got := d.Users[u]; got.Age != 56 || got.AgeGroup != "56+" || got.Occupation != "self-employed" {
		t.Errorf("user 2 = %+v", got)
	}
	// First row of the file: 1::1193::5.
	if it, _ := d.ItemIndex("1193"); d.Ratings.User[0] != u-1 || d.Ratings.Item[0] != it || d.Ratings.Value[0] != 5 {
		t.Errorf("row 0 = %d %d %v", d.Ratings.User[0], d.Ratings.Item[0], d.Ratings.Value[0])
	}
}

func TestLoadML100KShared(t *testing.T) {
	dir := sharedtest.Path(t, "data", "ml-100k")
	d, err := Load(context.Background(), "ml-100k", dir)
	if err != nil {
		t.Fatal(err)
	}
	if d.Ratings.Len() != 100000 || d.NumUsers() != 943 || d.NumItems() != 1682 || d.RatedItems() != 1682 {
		t.Errorf("counts %d/%d/%d/%d, want 100000/943/1682/1682", d.Ratings.Len(), d.NumUsers(), d.NumItems(), d.RatedItems())
	}
	if !d.HasTime() || d.Ratings.Time[0] != 881250949 {
		t.Errorf("time of row 0 = %v", d.Ratings.Time[:1])
	}
	if err := d.Validate(); err != nil {
		t.Error(err)
	}
	i, _ := d.ItemIndex("1")
	if it := d.Items[i]; it.Title != "Toy Story" || it.Year != 1995 || strings.Join(it.Genres, "|") != "Animation|Children's|Comedy" {
		t.Errorf("item 1 = %+v", it)
	}
	u, _ := d.UserIndex("1")
	if got := d.Users[u]; got != (User{ID: "1", Age: 24, Gender: "M", Occupation: "technician", Zip: "85711"}) {
		t.Errorf("user 1 = %+v", got)
	}
	// u.item is ISO-8859-1 too: every title must decode to valid, mojibake-free text.
	for _, it := range d.Items {
		if strings.ContainsAny(it.Title, "\ufffdÃ") {
			t.Errorf("item %s title %q badly decoded", it.ID, it.Title)
		}
	}
}

// ml1m builds the inputs of the 1M parser from strings.
func ml1m(movies, users, ratings string) ml1mFiles {
	in := ml1mFiles{
		movies: []byte(movies), moviesName: "movies.dat",
		ratings: strings.NewReader(ratings), ratingsName: "ratings.dat",
		usersName: "users.dat",
	}
	if users != "" {
		in.users = []byte(users)
	}
	return in
}

const (
	tinyMovies = "1::Toy Story (1995)::Animation|Children's|Comedy\n2::Matrix, The (1999)::Action|Sci-Fi\n3::Mis\xe9rables, Les (1995)::Drama|Musical\n"
	tinyUsers  = "1::F::1::10::48067\n2::M::56::16::70072\n"
)

func TestParseML1M(t *testing.T) {
	d, err := parseML1M(context.Background(), ml1m(tinyMovies, tinyUsers, "1::1::5::978300760\r\n\n2::3::3::978302109\n1::2::4::978301968\n"))
	if err != nil {
		t.Fatal(err)
	}
	if d.Ratings.Len() != 3 || !d.HasTime() || d.Ratings.Time[2] != 978301968 || d.Ratings.Value[1] != 3 {
		t.Errorf("ratings %+v", d.Ratings)
	}
	if d.Items[2].Title != "Misérables, Les" || d.Items[2].DisplayTitle() != "Les Misérables" {
		t.Errorf("title %q display %q", d.Items[2].Title, d.Items[2].DisplayTitle())
	}
	// The same movies file already converted to UTF-8 reads the same.
	utf := strings.Replace(tinyMovies, "\xe9", "é", 1)
	d2, err := parseML1M(context.Background(), ml1m(utf, "", "1::3::5\n"))
	if err != nil {
		t.Fatal(err)
	}
	if d2.Items[2].Title != "Misérables, Les" || d2.HasTime() {
		t.Errorf("utf-8 title %q, time %v", d2.Items[2].Title, d2.HasTime())
	}
	if d2.NumUsers() != 1 || d2.Users[0].Gender != "" {
		t.Errorf("users without users.dat: %+v", d2.Users)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name          string
		movies, users string
		ratings       string
		file          string
		line          int
		field         string
		is            error
	}{
		{"truncated line", tinyMovies, "", "1::1::5\n1::2\n", "ratings.dat", 2, "", ErrFieldCount},
		{"field count changes", tinyMovies, "", "1::1::5::978300760\n1::2::4\n", "ratings.dat", 2, "", ErrFieldCount},
		{"too many fields", tinyMovies, "", "1::1::5::9::9\n", "ratings.dat", 1, "", ErrFieldCount},
		{"non-numeric rating", tinyMovies, "", "1::1::5\n1::2::x\n", "ratings.dat", 2, "rating", nil},
		{"rating above scale", tinyMovies, "", "1::1::6\n", "ratings.dat", 1, "rating", ErrOutOfScale},
		{"rating zero", tinyMovies, "", "1::1::5\n\n1::2::0\n", "ratings.dat", 3, "rating", ErrOutOfScale},
		{"half star on whole scale", tinyMovies, "", "1::1::3.5\n", "ratings.dat", 1, "rating", ErrOutOfScale},
		{"unknown movie", tinyMovies, "", "1::1::5\n1::9::4\n", "ratings.dat", 2, "item", ErrUnknownID},
		{"unknown user", tinyMovies, tinyUsers, "1::1::5\n7::2::4\n", "ratings.dat", 2, "user", ErrUnknownID},
		{"bad user id", tinyMovies, "", "u1::1::5\n", "ratings.dat", 1, "user", nil},
		{"bad timestamp", tinyMovies, "", "1::1::5::soon\n", "ratings.dat", 1, "timestamp", nil},
		{"duplicate rating", tinyMovies, "", "1::1::5\n1::2::4\n1::1::3\n", "ratings.dat", 3, "", ErrDuplicate},
		{"empty ratings", tinyMovies, "", "", "ratings.dat", 0, "", ErrEmpty},
		{"blank ratings", tinyMovies, "", "\n\n", "ratings.dat", 0, "", ErrEmpty},
		{"empty movies", "", "", "1::1::5\n", "movies.dat", 0, "", ErrEmpty},
		{"duplicate movie", tinyMovies + "2::Again (2000)::Drama\n", "", "1::1::5\n", "movies.dat", 4, "movie id", ErrDuplicate},
		{"movies truncated", "1::Toy Story (1995)\n", "", "1::1::5\n", "movies.dat", 1, "", ErrFieldCount},
		{"mixed encodings", tinyMovies + "4::Café (2001)::Drama\n", "", "1::1::5\n", "movies.dat", 4, "", ErrEncoding},
		{"double-encoded UTF-8", "1::MisÃ©rables, Les (1995)::Drama\n", "", "1::1::5\n", "movies.dat", 1, "", ErrEncoding},
		{"bad age code", tinyMovies, "1::F::2::10::48067\n", "1::1::5\n", "users.dat", 1, "age", nil},
		{"bad occupation", tinyMovies, "1::F::1::21::48067\n", "1::1::5\n", "users.dat", 1, "occupation", nil},
		{"bad gender", tinyMovies, "1::X::1::2::48067\n", "1::1::5\n", "users.dat", 1, "gender", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseML1M(context.Background(), ml1m(tt.movies, tt.users, tt.ratings))
			checkParseError(t, err, tt.file, tt.line, tt.field, tt.is, tt.file)
		})
	}
}

// checkParseError checks that err is a *ParseError at file:line in field,
// that it wraps is (unless nil) and that its message contains msg.
func checkParseError(t *testing.T, err error, file string, line int, field string, is error, msg string) {
	t.Helper()
	var pe *ParseError
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v, want a *ParseError", err)
	}
	if pe.File != file || pe.Line != line || pe.Field != field {
		t.Errorf("error at %s:%d field %q, want %s:%d field %q (%v)", pe.File, pe.Line, pe.Field, file, line, field, err)
	}
	if is != nil && !errors.Is(err, is) {
		t.Errorf("err = %v, want errors.Is %v", err, is)
	}
	if !strings.Contains(err.Error(), msg) {
		t.Errorf("err = %q, want it to contain %q", err, msg)
	}
}

func TestLoadML1MFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := LoadML1M(dir); err == nil || !strings.Contains(err.Error(), "movies.dat") {
		t.Errorf("missing movies.dat: err = %v", err)
	}
	write("movies.dat", tinyMovies)
	if _, err := LoadML1M(dir); err == nil || !strings.Contains(err.Error(), "ratings.dat") || !strings.Contains(err.Error(), "ratings_no_ts.dat") {
		t.Errorf("missing ratings: err = %v", err)
	}
	write("ratings_no_ts.dat", "1::1::5\n")
	d, err := LoadML1M(dir)
	if err != nil || d.Ratings.Len() != 1 || d.HasTime() {
		t.Fatalf("ratings_no_ts.dat: %v", err)
	}
	write("ratings.dat", "1::1::5::1\n2::2::4::2\n")
	if d, err = LoadML1M(dir); err != nil || d.Ratings.Len() != 2 || !d.HasTime() {
		t.Fatalf("ratings.dat preferred: %v, %+v", err, d)
	}
	write("ratings.dat", "1::1::5::1\n2::2::4\n")
	_, err = LoadML1M(dir)
	if want := filepath.Join(dir, "ratings.dat") + ":2"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("err = %v, want it to name %s", err, want)
	}
}

func TestParseML100K(t *testing.T) {
	genre := "unknown|0\nAction|1\nDrama|2\n"
	item := "1|Toy Story (1995)|01-Jan-1995||http://x|0|1|1\n2|Caf\xe9 (1996)|01-Jan-1996||http://y|0|0|1\n3|unknown|||http://z|1|0|0\n"
	user := "1|24|M|technician|85711\n2|53|F|other|94043\n"
	in := func(data string) ml100kFiles {
		return ml100kFiles{
			item: []byte(item), genre: []byte(genre), user: []byte(user),
			itemName: "u.item", genreName: "u.genre", uName: "u.user",
			data: strings.NewReader(data), dataName: "u.data",
		}
	}
	d, err := parseML100K(context.Background(), in("1\t1\t3\t881250949\n2\t2\t5\t881250950\n"))
	if err != nil {
		t.Fatal(err)
	}
	if d.Items[1].Title != "Café" || d.Items[1].Year != 1996 || strings.Join(d.Items[0].Genres, ",") != "Action,Drama" {
		t.Errorf("items %+v", d.Items)
	}
	if d.Items[2].Title != "unknown" || d.Items[2].Year != 0 {
		t.Errorf("item without date %+v", d.Items[2])
	}
	for _, tc := range []struct {
		data  string
		line  int
		field string
	}{
		{"1\t1\t3\n", 1, ""},
		{"1\t1\t3\t881250949\n1\t4\t3\t881250949\n", 2, "item"},
		{"1\t1\t3\t881250949\n3\t1\t3\t881250949\n", 2, "user"},
		{"1\t1\t3.0e\t881250949\n", 1, "rating"},
	} {
		_, err := parseML100K(context.Background(), in(tc.data))
		var pe *ParseError
		if !errors.As(err, &pe) || pe.File != "u.data" || pe.Line != tc.line || pe.Field != tc.field {
			t.Errorf("%q: err = %v, want u.data:%d field %q", tc.data, err, tc.line, tc.field)
		}
	}
	bad := in("1\t1\t3\t1\n")
	bad.item = []byte("1|Toy Story (1995)|01-Jan-1995||http://x|0|1\n")
	if _, err := parseML100K(context.Background(), bad); err == nil || !strings.Contains(err.Error(), "u.item:1") {
		t.Errorf("short genre flags: err = %v", err)
	}
}

func TestSplitTitle(t *testing.T) {
	tests := []struct {
		in, title, display string
		year               int
	}{
		{"Toy Story (1995)", "Toy Story", "Toy Story", 1995},
		{"Matrix, The (1999)", "Matrix, The", "The Matrix", 1999},
		{"Associate, The (L'Associe)(1982)", "Associate, The (L'Associe)", "The Associate (L'Associe)", 1982},
		{"City of Lost Children, The (Cité des enfants perdus, La) (1995)", "City of Lost Children, The (Cité des enfants perdus, La)", "The City of Lost Children (Cité des enfants perdus, La)", 1995},
		{"Babylon 5", "Babylon 5", "Babylon 5", 0},
		{"  Spaced (1999) ", "Spaced", "Spaced", 1999},
		{"Year (19x9)", "Year (19x9)", "Year (19x9)", 0},
		{"Cosmos (1980–1981)", "Cosmos (1980–1981)", "Cosmos (1980–1981)", 0},
		{", The (2000)", ", The", ", The", 2000},
		{"(2000)", "", "", 2000},
	}
	for _, tt := range tests {
		title, year := SplitTitle(tt.in)
		if title != tt.title || year != tt.year {
			t.Errorf("SplitTitle(%q) = %q, %d; want %q, %d", tt.in, title, year, tt.title, tt.year)
		}
		if got := (Item{Title: title}).DisplayTitle(); got != tt.display {
			t.Errorf("DisplayTitle(%q) = %q, want %q", title, got, tt.display)
		}
	}
}

func TestDecodeText(t *testing.T) {
	latin := []byte("1::Caf\xe9 (1993)::Comedy\n2::Alien\xb3 (1992)::Action\n")
	got, err := decodeText(latin, "f")
	if err != nil || !bytes.Equal(got, []byte("1::Café (1993)::Comedy\n2::Alien³ (1992)::Action\n")) {
		t.Errorf("latin-1: %q, %v", got, err)
	}
	if got, err := decodeText([]byte("ascii only\n"), "f"); err != nil || string(got) != "ascii only\n" {
		t.Errorf("ascii: %q %v", got, err)
	}
}

// TestML1MEncodingsShared loads the real movies.dat as shipped (ISO-8859-1),
// converted to UTF-8 (same titles), and double-encoded (an error naming the
// first accented line, 73 "Misérables, Les").
func TestML1MEncodingsShared(t *testing.T) {
	dir := sharedtest.Path(t, "data", "ml-1m")
	latin, err := os.ReadFile(filepath.Join(dir, "movies.dat"))
	if err != nil {
		t.Fatal(err)
	}
	utf, err := charmap.ISO8859_1.NewDecoder().Bytes(latin)
	if err != nil {
		t.Fatal(err)
	}
	double, err := charmap.ISO8859_1.NewDecoder().Bytes(utf)
	if err != nil {
		t.Fatal(err)
	}
	load := func(movies []byte) (*Dataset, error) {
		return parseML1M(context.Background(), ml1m(string(movies), "", "1::1::5\n"))
	}
	a, err := load(latin)
	if err != nil {
		t.Fatal(err)
	}
	b, err := load(utf)
	if err != nil {
		t.Fatal(err)
	}
	accented := 0
	for i := range a.Items {
		if a.Items[i].Title != b.Items[i].Title {
			t.Errorf("movie %s: %q from Latin-1, %q from UTF-8", a.Items[i].ID, a.Items[i].Title, b.Items[i].Title)
		}
		if !isASCII([]byte(a.Items[i].Title)) {
			accented++
		}
	}
	if accented < 50 {
		t.Errorf("only %d titles with non-ASCII letters", accented)
	}
	_, err = load(double)
	var pe *ParseError
	if !errors.As(err, &pe) || !errors.Is(err, ErrEncoding) || pe.Line != 73 || !strings.Contains(err.Error(), "MisÃ©rables") {
		t.Errorf("double-encoded: err = %v, want an encoding error at movies.dat:73", err)
	}
	// Half converted: the first 1000 lines UTF-8, the rest Latin-1.
	cut := bytes.Index(latin, []byte("\n1001::"))
	mixed := append(append([]byte{}, utf[:bytes.Index(utf, []byte("\n1001::"))]...), latin[cut:]...)
	if _, err = load(mixed); !errors.As(err, &pe) || !errors.Is(err, ErrEncoding) || pe.Line != 73 {
		t.Errorf("mixed: err = %v, want an encoding error at movies.dat:73", err)
	}
}

func TestLoadML10M(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "movies.dat"), []byte("1::Toy Story (1995)::Adventure|Animation\n2::Jumanji (1995)::Adventure\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "ratings.dat"), []byte("1::1::5::838985046\n1::2::3.5::838983525\n"), 0o644)
	d, err := Load(context.Background(), "ml-10m", dir)
	if err != nil {
		t.Fatal(err)
	}
	if d.Name != "ml-10m" || d.Scale != HalfStarsFive || d.Ratings.Value[1] != 3.5 {
		t.Errorf("%+v", d)
	}
	// The same file is off the 1M scale.
	if _, err := LoadML1M(dir); !errors.Is(err, ErrOutOfScale) || !strings.Contains(err.Error(), "ratings.dat:2") {
		t.Errorf("3.5 as ml-1m: %v", err)
	}
}

// TestParseML100KMetadataErrors checks that each metadata file's errors name
// the file, line and field, and that a wrong field count says what it wants.
func TestParseML100KMetadataErrors(t *testing.T) {
	genre := "unknown|0\nAction|1\n"
	item := "1|Toy Story (1995)|01-Jan-1995||http://x|0|1\n"
	user := "1|24|M|technician|85711\n"
	tests := []struct {
		name              string
		genre, item, user string
		file              string
		line              int
		field             string
		is                error
		msg               string
	}{
		{"genre field count", "unknown|0\nAction\n", item, user, "u.genre", 2, "", ErrFieldCount, `1 fields in "Action", want 2 (name|index)`},
		{"genre index gap", "unknown|0\nAction|2\n", item, user, "u.genre", 2, "index", nil, "want 1"},
		{"genre empty", "\n\n", item, user, "u.genre", 0, "", ErrEmpty, ""},
		{"item field count", genre, "\n1|Toy Story (1995)|01-Jan-1995||http://x|0\n", user, "u.item", 2, "", ErrFieldCount, "want 7 (id|title|release date|video release date|URL|2 genre flags)"},
		{"item flag", genre, "1|Toy Story (1995)|01-Jan-1995||http://x|0|2\n", user, "u.item", 1, "genre Action", nil, `flag "2"`},
		{"item empty", genre, "", user, "u.item", 0, "", ErrEmpty, ""},
		{"user field count", genre, item, "1|24|M|technician\n", "u.user", 1, "", ErrFieldCount, "want 5 (id|age|gender|occupation|zip)"},
		{"user age", genre, item, "1|old|M|technician|85711\n", "u.user", 1, "age", nil, `"old"`},
		{"user duplicate", genre, item, user + user, "u.user", 2, "user id", ErrDuplicate, ""},
		{"user blank", genre, item, " \r\n", "u.user", 0, "", ErrEmpty, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := ml100kFiles{
				item: []byte(tt.item), genre: []byte(tt.genre), user: []byte(tt.user),
				itemName: "u.item", genreName: "u.genre", uName: "u.user",
				data: strings.NewReader("1\t1\t3\t881250949\n"), dataName: "u.data",
			}
			_, err := parseML100K(context.Background(), in)
			checkParseError(t, err, tt.file, tt.line, tt.field, tt.is, tt.msg)
		})
	}
}
