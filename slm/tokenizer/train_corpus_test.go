package tokenizer

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
)

// A generated MovieLens-like corpus: per-user profiles, item descriptions,
// "I rated X r because ..." lines and the rating prompt format, close to
// what usersim pretrains its compact base on.

var movieTitles = []string{
	"Toy Story (1995)", "GoldenEye (1995)", "Four Rooms (1995)", "Get Shorty (1995)", "Copycat (1995)",
	"Twelve Monkeys (1995)", "Babe (1995)", "Dead Man Walking (1995)", "Richard III (1995)", "Seven (Se7en) (1995)",
	"The Usual Suspects (1995)", "Mighty Aphrodite (1995)", "Postino, Il (1994)", "Mr. Holland's Opus (1995)",
	"French Twist (Gazon maudit) (1995)", "From Dusk Till Dawn (1996)", "White Balloon, The (1995)",
	"Antonia's Line (1995)", "Angels and Insects (1995)", "Muppet Treasure Island (1996)", "Braveheart (1995)",
	"Taxi Driver (1976)", "Rumble in the Bronx (1995)", "Birdcage, The (1996)", "Brothers McMullen, The (1995)",
	"Bad Boys (1995)", "Apollo 13 (1995)", "Batman Forever (1995)", "Belle de jour (1967)", "Crimson Tide (1995)",
	"Crumb (1994)", "Desperado (1995)", "Doom Generation, The (1995)", "Free Willy 2 (1995)", "Mad Love (1995)",
	"Nadja (1994)", "Net, The (1995)", "Strange Days (1995)", "To Wong Foo, Thanks for Everything! (1995)",
	"Billy Madison (1995)", "Clerks (1994)", "Disclosure (1994)", "Dolores Claiborne (1994)", "Eat Drink Man Woman (1994)",
	"Exotica (1994)", "Ed Wood (1994)", "Hoop Dreams (1994)", "I.Q. (1994)", "Star Wars (1977)", "Léon (1994)",
	"Amélie (2001)", "Crouching Tiger, Hidden Dragon (Wo hu cang long) (2000)", "8½ (1963)",
}

var genreNames = []string{"Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
	"Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western"}

var occupations = []string{"student", "programmer", "engineer", "educator", "writer", "administrator",
	"librarian", "technician", "executive", "healthcare", "artist", "scientist", "retired", "other"}

var reasons = []string{
	"I love animated films with a lot of heart",
	"the plot was predictable and the ending dragged",
	"the acting was superb, especially the lead",
	"it is one of the best thrillers I have seen",
	"I do not usually enjoy musicals",
	"the special effects have aged badly",
	"my friends recommended it and they were right",
	"it was too long and too slow for my taste",
	"the soundtrack is wonderful",
	"I like movies from the seventies",
	"it's a classic that everyone should watch",
	"the humour didn't work for me",
	"others agree: the average rating is high",
}

var titleWords = strings.Fields(`silent river night city summer winter secret garden last journey lost
island dark knight golden road wild heart broken promise little stranger house hill shadow empire
return kingdom fire ice storm ocean desert mountain forest dream memory letter song dance war peace
love story friend enemy brother sister mother father child family ghost machine planet star moon
sun sky rain snow wind thunder blood stone glass iron silver crystal paper dragon tiger wolf eagle
horse lion bird fish angel devil saint king queen prince princess soldier doctor lawyer teacher
detective thief hunter killer lover dancer singer painter writer sailor pilot driver farmer
cowboy sheriff outlaw spy agent captain general emperor wizard witch monster alien robot zombie
vampire hero legend myth tale chronicle adventure mystery escape chase rescue revenge justice
freedom glory honor courage fear hope faith truth lies money power fame`)

var reasonParts = [][]string{
	{"I", "We", "My wife and I", "Honestly I", "As a fan I", "Personally I"},
	{"loved", "enjoyed", "hated", "could not stand", "appreciated", "was bored by", "admired", "liked"},
	{"the acting", "the story", "the pacing", "the dialogue", "the music", "the photography", "the ending",
		"the characters", "the special effects", "the humour", "the violence", "the romance", "the twist"},
	{"from start to finish", "in the second half", "more than I expected", "despite the reviews",
		"as usual for this director", "although it felt dated", "and would watch it again", "but not the rest"},
}

// lexicon is a made-up vocabulary of 6000 words built from syllables,
// drawn with Zipf frequencies in free text, so that the generated corpus
// has the long tail of words of real text.
var lexicon = func() []string {
	r := rand.New(rand.NewPCG(42, 42))
	cons := strings.Split("b c d f g h j k l m n p r s t v w z br cl st th sh ch tr gr pl", " ")
	vows := strings.Split("a e i o u ai ea ou io", " ")
	seen := map[string]bool{}
	var out []string
	for len(out) < 6000 {
		var b strings.Builder
		for range 1 + r.IntN(3) {
			b.WriteString(cons[r.IntN(len(cons))])
			b.WriteString(vows[r.IntN(len(vows))])
		}
		if r.IntN(2) == 0 {
			b.WriteString(cons[r.IntN(len(cons))])
		}
		if w := b.String(); !seen[w] {
			seen[w] = true
			out = append(out, w)
		}
	}
	return out
}()

// freeText returns n words of the lexicon, Zipf distributed.
func freeText(r *rand.Rand, z *rand.Zipf, n int) string {
	words := make([]string, n)
	for i := range words {
		words[i] = lexicon[z.Uint64()]
	}
	return strings.Join(words, " ")
}

// genTitle makes a title such as "The Silent River (1987)".
func genTitle(r *rand.Rand) string {
	w := func() string {
		s := titleWords[r.IntN(len(titleWords))]
		return strings.ToUpper(s[:1]) + s[1:]
	}
	var t string
	switch r.IntN(4) {
	case 0:
		t = "The " + w() + " " + w()
	case 1:
		t = w() + " of the " + w()
	case 2:
		t = w() + " " + w() + " " + w()
	default:
		t = movieTitles[r.IntN(len(movieTitles))]
		return t
	}
	return fmt.Sprintf("%s (%d)", t, 1920+r.IntN(81))
}

func genReason(r *rand.Rand) string {
	if r.IntN(3) == 0 {
		return reasons[r.IntN(len(reasons))]
	}
	var parts []string
	for _, p := range reasonParts {
		parts = append(parts, p[r.IntN(len(p))])
	}
	return strings.ToLower(parts[0][:1]) + strings.Join(parts, " ")[1:]
}

// genCorpus returns about size bytes of text, the same for the same seed.
func genCorpus(seed uint64, size int) string {
	r := rand.New(rand.NewPCG(seed, 1))
	z := rand.NewZipf(r, 1.1, 2, uint64(len(lexicon)-1))
	var b strings.Builder
	b.Grow(size + 1024)
	for user := 1; b.Len() < size; user++ {
		age := 18 + r.IntN(50)
		fmt.Fprintf(&b, "USER %d PROFILE: a %d-year-old %s who likes %s and %s movies. Mean rating %.2f over %d ratings.\n",
			user, age, occupations[r.IntN(len(occupations))], genreNames[r.IntN(len(genreNames))],
			genreNames[r.IntN(len(genreNames))], 2.5+2*r.Float64(), 20+r.IntN(300))
		n := 5 + r.IntN(20)
		for i := 0; i < n; i++ {
			title := genTitle(r)
			rating := 1 + r.IntN(5)
			switch r.IntN(3) {
			case 0:
				fmt.Fprintf(&b, "I rated %s %d because %s.\n", title, rating, genReason(r))
				if r.IntN(2) == 0 {
					fmt.Fprintf(&b, "It reminded me of %s, %s.\n", freeText(r, z, 2+r.IntN(6)), freeText(r, z, 3+r.IntN(10)))
				}
			case 1:
				fmt.Fprintf(&b, "MOVIE: %s GENRES: %s|%s AVERAGE: %.2f (%d votes)\nMY MEMORY: I gave %s a %d.\nRATING: %d\n",
					title, genreNames[r.IntN(len(genreNames))], genreNames[r.IntN(len(genreNames))],
					1+4*r.Float64(), r.IntN(600), genTitle(r), 1+r.IntN(5), rating)
			default:
				fmt.Fprintf(&b, "%s is a %s film; viewers rate it %.1f on average.\n\n", title,
					strings.ToLower(genreNames[r.IntN(len(genreNames))]), 1+4*r.Float64())
			}
		}
	}
	return b.String()
}

var (
	corpusOnce sync.Once
	corpus5MB  string
)

// corpus5 returns a 5 MB generated corpus, built once per test binary.
func corpus5() string {
	corpusOnce.Do(func() { corpus5MB = genCorpus(1, 5<<20) })
	return corpus5MB
}

// corpusLines splits a corpus into texts of about n lines each.
func corpusDocs(s string, n int) []string {
	lines := strings.SplitAfter(s, "\n")
	var out []string
	for i := 0; i < len(lines); i += n {
		out = append(out, strings.Join(lines[i:min(i+n, len(lines))], ""))
	}
	return out
}
