package dataset

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// LoadMLLatest loads a MovieLens release in the CSV layout of ml-latest-small,
// ml-latest, ml-20m and ml-25m from dir: movies.csv (movieId,title,genres;
// titles quoted where they hold commas) and ratings.csv
// (userId,movieId,rating,timestamp), both with their header line, ratings in
// half stars from 0.5 to 5. Every rated movie must be in movies.csv. A
// (user, movie) pair rated twice is an error. Other files (tags.csv,
// links.csv, genome-*) are not read.
func LoadMLLatest(dir string) (*Dataset, error) { return loadMLLatest(context.Background(), dir) }

func loadMLLatest(ctx context.Context, dir string) (*Dataset, error) {
	moviesName := filepath.Join(dir, "movies.csv")
	movies, err := os.ReadFile(moviesName)
	if err != nil {
		return nil, fmt.Errorf("movielens: %w", err)
	}
	ratingsName := filepath.Join(dir, "ratings.csv")
	f, err := os.Open(ratingsName)
	if err != nil {
		return nil, fmt.Errorf("movielens: %w", err)
	}
	defer f.Close()
	var size int64
	if st, err := f.Stat(); err == nil {
		size = st.Size()
	}
	return parseMLLatest(ctx, movies, moviesName, f, ratingsName, size)
}

func parseMLLatest(ctx context.Context, movies []byte, moviesName string, ratings io.Reader, ratingsName string, size int64) (*Dataset, error) {
	d := &Dataset{Name: "ml-latest", Scale: HalfStarsFive}
	var users, items idTable
	if err := parseMLLatestMovies(d, &items, movies, moviesName); err != nil {
		return nil, err
	}
	t := &ratingsTarget{d: d, users: &users, items: &items, sizeHint: size}
	f := ratingsFormat{
		sep: []byte(","), minFields: 4, maxFields: 4,
		header: []byte("userId,movieId,rating,timestamp"), csvQuoting: true,
	}
	if err := parseRatings(ctx, ratings, ratingsName, f, t); err != nil {
		return nil, err
	}
	if err := dedupe(d, ratingsName, &t.lines, DuplicateError); err != nil {
		return nil, err
	}
	return d, nil
}

// parseMLLatestMovies reads movies.csv: movieId,title,genres.
func parseMLLatestMovies(d *Dataset, items *idTable, data []byte, file string) error {
	text, err := decodeText(data, file)
	if err != nil {
		return err
	}
	text = bytes.TrimPrefix(text, []byte("\ufeff"))
	r := csv.NewReader(bytes.NewReader(text))
	r.FieldsPerRecord = 3
	r.ReuseRecord = true
	n := 0
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return csvErr(file, err)
		}
		line, _ := r.FieldPos(0)
		if n == 0 && line == 1 {
			if rec[0] != "movieId" || rec[1] != "title" || rec[2] != "genres" {
				return perrf(file, 1, "", "header %q, want movieId,title,genres", rec)
			}
			n++
			continue
		}
		if err := addMovie(d, items, []byte(rec[0]), rec[1], splitGenres(rec[2], "|")); err != nil {
			return perr(file, line, "movieId", err)
		}
		n++
	}
	if n <= 1 {
		return perr(file, 0, "", ErrEmpty)
	}
	return nil
}

// csvErr turns an encoding/csv error into a ParseError.
func csvErr(file string, err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		if errors.Is(pe.Err, csv.ErrFieldCount) {
			return perrf(file, pe.Line, "", "%w: %v", ErrFieldCount, pe.Err)
		}
		return perr(file, pe.Line, "", pe.Err)
	}
	return perr(file, 0, "", err)
}
