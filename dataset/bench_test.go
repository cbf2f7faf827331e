package dataset

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/usersim/usersim/internal/sharedtest"
)

// dirBytes is the size of the files a loader reads, for MB/s.
func dirBytes(b *testing.B, dir string, names ...string) int64 {
	var n int64
	for _, name := range names {
		if st, err := os.Stat(filepath.Join(dir, name)); err == nil {
			n += st.Size()
		}
	}
	return n
}

func benchLoad(b *testing.B, name string, files ...string) {
	dir := sharedtest.Path(b, "data", name)
	b.SetBytes(dirBytes(b, dir, files...))
	b.ReportAllocs()
	for b.Loop() {
		d, err := Load(context.Background(), name, dir)
		if err != nil {
			b.Fatal(err)
		}
		if d.Ratings.Len() == 0 {
			b.Fatal("no ratings")
		}
	}
}

func BenchmarkLoadML1M(b *testing.B) {
	benchLoad(b, "ml-1m", "movies.dat", "users.dat", "ratings.dat", "ratings_no_ts.dat")
}

func BenchmarkLoadML100K(b *testing.B) {
	benchLoad(b, "ml-100k", "u.item", "u.genre", "u.user", "u.data")
}

// BenchmarkLoadML1MNaive is the obvious alternative for the ratings file,
// to compare against: bufio.Scanner, strings.Split, strconv and a map per
// id, without the movie and user files.
func BenchmarkLoadML1MNaive(b *testing.B) {
	dir := sharedtest.Path(b, "data", "ml-1m")
	path := filepath.Join(dir, "ratings_no_ts.dat")
	b.SetBytes(dirBytes(b, dir, "ratings_no_ts.dat"))
	b.ReportAllocs()
	for b.Loop() {
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		users, items := map[string]int32{}, map[string]int32{}
		var us, is []int32
		var vs []float32
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			p := strings.Split(sc.Text(), "::")
			u, ok := users[p[0]]
			if !ok {
				u = int32(len(users))
				users[p[0]] = u
			}
			it, ok := items[p[1]]
			if !ok {
				it = int32(len(items))
				items[p[1]] = it
			}
			v, err := strconv.ParseFloat(p[2], 32)
			if err != nil {
				b.Fatal(err)
			}
			us, is, vs = append(us, u), append(is, it), append(vs, float32(v))
		}
		f.Close()
		if len(us) != 1000209 {
			b.Fatal(len(us))
		}
	}
}
