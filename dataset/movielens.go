package dataset

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ML-1M demographic codes, from the release's README.
var (
	ml1mAgeGroups = map[int]string{
		1: "Under 18", 18: "18-24", 25: "25-34", 35: "35-44", 45: "45-49", 50: "50-55", 56: "56+",
	}
	ml1mOccupations = []string{
		"other", "academic/educator", "artist", "clerical/admin", "college/grad student",
		"customer service", "doctor/health care", "executive/managerial", "farmer",
		"homemaker", "K-12 student", "lawyer", "programmer", "retired", "sales/marketing",
		"scientist", "self-employed", "technician/engineer", "tradesman/craftsman",
		"unemployed", "writer",
	}
	// ml100kGenres is the content of u.genre, used when that file is absent.
	ml100kGenres = []string{
		"unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
		"Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
		"Romance", "Sci-Fi", "Thriller", "War", "Western",
	}
)

// ml1mFiles are the inputs of the MovieLens-1M parser. Users is nil when
// users.dat is absent.
type ml1mFiles struct {
	movies, users         []byte
	moviesName, usersName string
	ratings               io.Reader
	ratingsName           string
	ratingsSize           int64
	scale                 Scale // zero: FiveStars
}

// LoadML1M loads MovieLens 1M from dir: movies.dat (ISO-8859-1), the ratings
// in ratings.dat (UserID::MovieID::Rating::Timestamp) or, when only that is
// present, ratings_no_ts.dat (UserID::MovieID::Rating), and users.dat when
// present (demographics; then every rating's user must be listed there).
// Either ratings file may have 3 or 4 fields, the same on every line.
// Every rated movie must be listed in movies.dat. A (user, movie) pair rated
// twice is an error.
func LoadML1M(dir string) (*Dataset, error) { return loadML1M(context.Background(), dir, FiveStars) }

// LoadML10M loads MovieLens 10M from dir: the 1M layout (movies.dat,
// ratings.dat, no users.dat) with ratings in half stars from 0.5 to 5.
func LoadML10M(dir string) (*Dataset, error) {
	d, err := loadML1M(context.Background(), dir, HalfStarsFive)
	if d != nil {
		d.Name = "ml-10m"
	}
	return d, err
}

func loadML1M(ctx context.Context, dir string, scale Scale) (*Dataset, error) {
	in := ml1mFiles{scale: scale}
	var err error
	in.moviesName = filepath.Join(dir, "movies.dat")
	if in.movies, err = os.ReadFile(in.moviesName); err != nil {
		return nil, fmt.Errorf("movielens: %w", err)
	}
	in.usersName = filepath.Join(dir, "users.dat")
	if in.users, err = readOptional(in.usersName); err != nil {
		return nil, fmt.Errorf("movielens: %w", err)
	}
	f, name, err := openFirst(dir, "ratings.dat", "ratings_no_ts.dat")
	if err != nil {
		return nil, fmt.Errorf("movielens: %w", err)
	}
	defer f.Close()
	in.ratings, in.ratingsName = f, name
	if st, err := f.Stat(); err == nil {
		in.ratingsSize = st.Size()
	}
	return parseML1M(ctx, in)
}

func parseML1M(ctx context.Context, in ml1mFiles) (*Dataset, error) {
	d := &Dataset{Name: "ml-1m", Scale: in.scale}
	if in.scale == (Scale{}) {
		d.Scale = FiveStars
	}
	var users, items idTable
	if err := parseML1MMovies(d, &items, in.movies, in.moviesName); err != nil {
		return nil, err
	}
	if in.users != nil {
		if err := parseML1MUsers(d, &users, in.users, in.usersName); err != nil {
			return nil, err
		}
	}
	t := &ratingsTarget{d: d, users: &users, items: &items, usersFixed: in.users != nil, sizeHint: in.ratingsSize}
	f := ratingsFormat{sep: []byte("::"), minFields: 3, maxFields: 4}
	if err := parseRatings(ctx, in.ratings, in.ratingsName, f, t); err != nil {
		return nil, err
	}
	if err := dedupe(d, in.ratingsName, &t.lines, DuplicateError); err != nil {
		return nil, err
	}
	return d, nil
}

// The metadata tables of MovieLens 1M and 100K (u.item's field count
// depends on u.genre: see ml100kItemTable).
var (
	ml1mMovieTable   = table{sep: "::", fields: 3, layout: "MovieID::Title::Genres"}
	ml1mUserTable    = table{sep: "::", fields: 5, layout: "UserID::Gender::Age::Occupation::Zip-code"}
	ml100kGenreTable = table{sep: "|", fields: 2, layout: "name|index"}
	ml100kUserTable  = table{sep: "|", fields: 5, layout: "id|age|gender|occupation|zip"}
)

func ml100kItemTable(genres int) table {
	return table{sep: "|", fields: 5 + genres,
		layout: fmt.Sprintf("id|title|release date|video release date|URL|%d genre flags", genres)}
}

// table is the shape of a metadata file: lines of fields split by sep, the
// same number on every line.
type table struct {
	sep    string
	fields int    // every non-blank line has exactly this many
	layout string // the fields by name, for error messages
}

// eachRecord decodes data (see decodeText) and calls fn with the fields of
// each non-blank line, numbered from 1; the fields alias a buffer reused
// from line to line. A line with another field count is an ErrFieldCount
// error, a file without records an ErrEmpty one.
func (t table) eachRecord(data []byte, file string, fn func(no int, f [][]byte) error) error {
	text, err := decodeText(data, file)
	if err != nil {
		return err
	}
	sep := []byte(t.sep)
	buf := make([][]byte, 0, t.fields+1)
	n := 0
	err = eachLine(text, func(no int, line []byte) error {
		f := split(line, sep, buf)
		if len(f) != t.fields {
			return perrf(file, no, "", "%w: %d fields in %q, want %d (%s)", ErrFieldCount, len(f), line, t.fields, t.layout)
		}
		n++
		return fn(no, f)
	})
	if err != nil {
		return err
	}
	if n == 0 {
		return perr(file, 0, "", ErrEmpty)
	}
	return nil
}

func parseML1MMovies(d *Dataset, items *idTable, data []byte, file string) error {
	return ml1mMovieTable.eachRecord(data, file, func(no int, f [][]byte) error {
		if err := addMovie(d, items, f[0], string(f[1]), splitGenres(string(f[2]), "|")); err != nil {
			return perr(file, no, "movie id", err)
		}
		return nil
	})
}

func parseML1MUsers(d *Dataset, users *idTable, data []byte, file string) error {
	return ml1mUserTable.eachRecord(data, file, func(no int, f [][]byte) error {
		u := User{ID: string(f[0]), Gender: string(f[1]), Zip: string(f[4])}
		if u.Gender != "M" && u.Gender != "F" {
			return perrf(file, no, "gender", "%q is not M or F", f[1])
		}
		age, err := strconv.Atoi(string(f[2]))
		if u.AgeGroup = ml1mAgeGroups[age]; err != nil || u.AgeGroup == "" {
			return perrf(file, no, "age", "%q is not one of the age codes 1, 18, 25, 35, 45, 50, 56", f[2])
		}
		u.Age = age
		occ, err := strconv.Atoi(string(f[3]))
		if err != nil || occ < 0 || occ >= len(ml1mOccupations) {
			return perrf(file, no, "occupation", "%q is not an occupation code 0-20", f[3])
		}
		u.Occupation = ml1mOccupations[occ]
		if err := addUser(d, users, f[0], u); err != nil {
			return perr(file, no, "user id", err)
		}
		return nil
	})
}

// addMovie adds an item whose id is a MovieLens number and whose title is
// "Title (Year)".
func addMovie(d *Dataset, items *idTable, id []byte, title string, genres []string) error {
	n, err := parseID(id)
	if err != nil {
		return err
	}
	if _, dup := items.get(n); dup {
		return fmt.Errorf("%w movie id %d", ErrDuplicate, n)
	}
	t, y := SplitTitle(title)
	items.put(n, d.AddItem(Item{ID: string(id), Title: t, Year: y, Genres: genres}))
	return nil
}

func addUser(d *Dataset, users *idTable, id []byte, u User) error {
	n, err := parseID(id)
	if err != nil {
		return err
	}
	if _, dup := users.get(n); dup {
		return fmt.Errorf("%w user id %d", ErrDuplicate, n)
	}
	users.put(n, d.AddUser(u))
	return nil
}

// splitGenres splits a genre list; "" and "(no genres listed)" give none.
func splitGenres(s, sep string) []string {
	if s == "" || s == "(no genres listed)" {
		return nil
	}
	return strings.Split(s, sep)
}

// eachLine calls fn for each non-blank line of text, numbered from 1.
func eachLine(text []byte, fn func(no int, line []byte) error) error {
	no := 0
	for len(text) > 0 {
		no++
		line := text
		if i := bytes.IndexByte(text, '\n'); i >= 0 {
			line, text = text[:i], text[i+1:]
		} else {
			text = nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if err := fn(no, line); err != nil {
			return err
		}
	}
	return nil
}

// readOptional reads a file, returning nil, nil when it does not exist.
func readOptional(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

// openFirst opens the first of names that exists in dir.
func openFirst(dir string, names ...string) (*os.File, string, error) {
	for _, n := range names {
		p := filepath.Join(dir, n)
		f, err := os.Open(p)
		if err == nil {
			return f, p, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, "", err
		}
	}
	return nil, "", fmt.Errorf("%s: none of %s found: %w", dir, strings.Join(names, ", "), fs.ErrNotExist)
}

// ml100kFiles are the inputs of the MovieLens-100K parser; genre and users
// are nil when u.genre or u.user is absent.
type ml100kFiles struct {
	item, genre, user          []byte
	itemName, genreName, uName string
	data                       io.Reader
	dataName                   string
	dataSize                   int64
}

// LoadML100K loads MovieLens 100K from dir: u.data (user, item, rating,
// timestamp, tab separated), u.item (pipe separated, ISO-8859-1, with 19
// genre flags named by u.genre) and u.user when present (then every rating's
// user must be listed there). Every rated item must be in u.item.
func LoadML100K(dir string) (*Dataset, error) { return loadML100K(context.Background(), dir) }

func loadML100K(ctx context.Context, dir string) (*Dataset, error) {
	var in ml100kFiles
	var err error
	in.itemName = filepath.Join(dir, "u.item")
	if in.item, err = os.ReadFile(in.itemName); err != nil {
		return nil, fmt.Errorf("ml-100k: %w", err)
	}
	in.genreName = filepath.Join(dir, "u.genre")
	if in.genre, err = readOptional(in.genreName); err != nil {
		return nil, fmt.Errorf("ml-100k: %w", err)
	}
	in.uName = filepath.Join(dir, "u.user")
	if in.user, err = readOptional(in.uName); err != nil {
		return nil, fmt.Errorf("ml-100k: %w", err)
	}
	in.dataName = filepath.Join(dir, "u.data")
	f, err := os.Open(in.dataName)
	if err != nil {
		return nil, fmt.Errorf("ml-100k: %w", err)
	}
	defer f.Close()
	in.data = f
	if st, err := f.Stat(); err == nil {
		in.dataSize = st.Size()
	}
	return parseML100K(ctx, in)
}

func parseML100K(ctx context.Context, in ml100kFiles) (*Dataset, error) {
	d := &Dataset{Name: "ml-100k", Scale: FiveStars}
	genres := ml100kGenres
	if in.genre != nil {
		var err error
		if genres, err = parseML100KGenres(in.genre, in.genreName); err != nil {
			return nil, err
		}
	}
	var users, items idTable
	if err := parseML100KItems(d, &items, genres, in.item, in.itemName); err != nil {
		return nil, err
	}
	if in.user != nil {
		if err := parseML100KUsers(d, &users, in.user, in.uName); err != nil {
			return nil, err
		}
	}
	t := &ratingsTarget{d: d, users: &users, items: &items, usersFixed: in.user != nil, sizeHint: in.dataSize}
	f := ratingsFormat{sep: []byte("\t"), minFields: 4, maxFields: 4}
	if err := parseRatings(ctx, in.data, in.dataName, f, t); err != nil {
		return nil, err
	}
	if err := dedupe(d, in.dataName, &t.lines, DuplicateError); err != nil {
		return nil, err
	}
	return d, nil
}

// parseML100KGenres reads u.genre: "name|index" lines, indices 0..n-1.
func parseML100KGenres(data []byte, file string) ([]string, error) {
	var names []string
	err := ml100kGenreTable.eachRecord(data, file, func(no int, f [][]byte) error {
		i, err := strconv.Atoi(string(f[1]))
		if err != nil || i != len(names) {
			return perrf(file, no, "index", "%q, want %d (genres are numbered in order from 0)", f[1], len(names))
		}
		names = append(names, string(f[0]))
		return nil
	})
	if err != nil {
		return nil, err
	}
	return names, nil
}

// parseML100KItems reads u.item: id|title|release date|video release
// date|IMDb URL|one 0/1 flag per genre.
func parseML100KItems(d *Dataset, items *idTable, genres []string, data []byte, file string) error {
	return ml100kItemTable(len(genres)).eachRecord(data, file, func(no int, f [][]byte) error {
		var gs []string
		for g, flag := range f[5:] {
			switch string(flag) {
			case "1":
				gs = append(gs, genres[g])
			case "0":
			default:
				return perrf(file, no, "genre "+genres[g], "flag %q is not 0 or 1", flag)
			}
		}
		if err := addMovie(d, items, f[0], string(f[1]), gs); err != nil {
			return perr(file, no, "movie id", err)
		}
		if it := &d.Items[len(d.Items)-1]; it.Year == 0 {
			// No "(year)" in the title: take it from the release date, dd-Mon-yyyy.
			if date := f[2]; len(date) >= 4 {
				if y, err := strconv.Atoi(string(date[len(date)-4:])); err == nil {
					it.Year = y
				}
			}
		}
		return nil
	})
}

// parseML100KUsers reads u.user: id|age|gender|occupation|zip.
func parseML100KUsers(d *Dataset, users *idTable, data []byte, file string) error {
	return ml100kUserTable.eachRecord(data, file, func(no int, f [][]byte) error {
		age, err := strconv.Atoi(string(f[1]))
		if err != nil || age < 0 || age > 150 {
			return perrf(file, no, "age", "%q is not an age in years", f[1])
		}
		u := User{ID: string(f[0]), Age: age, Gender: string(f[2]), Occupation: string(f[3]), Zip: string(f[4])}
		if u.Gender != "M" && u.Gender != "F" {
			return perrf(file, no, "gender", "%q is not M or F", f[2])
		}
		if err := addUser(d, users, f[0], u); err != nil {
			return perr(file, no, "user id", err)
		}
		return nil
	})
}
