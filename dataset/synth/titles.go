package synth

import (
	"strconv"
	"strings"
)

// Word lists for fake but plausible movie titles. A few words carry
// Latin-1 accents so that the ISO-8859-1 files exercise their decoding.
var (
	titleAdjectives = []string{
		"Last", "Silent", "Broken", "Golden", "Hidden", "Crimson", "Lonely", "Wild", "Dark", "Secret",
		"Lost", "Burning", "Frozen", "Quiet", "Restless", "Little", "Big", "Endless", "Forgotten", "Savage",
		"Sweet", "Bitter", "Distant", "Electric", "Midnight", "Final", "Perfect", "Dangerous", "Eternal", "Long",
		"Crooked", "Hollow", "Velvet", "Iron", "Paper", "Glass", "Blue", "Scarlet", "Northern", "Southern",
	}
	titleNouns = []string{
		"Road", "River", "Summer", "Winter", "Heart", "Promise", "Stranger", "Kingdom", "Harbor", "Garden",
		"Shadow", "Mirror", "Journey", "Game", "Storm", "Dream", "Witness", "Letter", "Bridge", "Horizon",
		"Island", "Frontier", "Secret", "Voyage", "Crossing", "Legacy", "Affair", "Season", "Ticket", "Train",
		"Station", "Hotel", "Hour", "Night", "Morning", "Song", "Dance", "Circle", "Sky", "Mountain",
	}
	titlePlaces = []string{
		"Paris", "Avalon", "Santa Fe", "Vienna", "Tangier", "Brooklyn", "Montréal", "Zürich", "Memphis", "Havana",
		"Dublin", "Kyoto", "Marrakesh", "Casablanca", "the Bayou", "the Desert", "the Valley", "Coney Island", "São Paulo", "Reno",
		"the North", "Old Town", "Eden", "the Coast", "Saint-Étienne", "Tucson", "Lisbon", "Naples", "Cairo", "Shanghai",
	}
	titleNames = []string{
		"Charlie", "Lucy", "Max", "Rosa", "Eddie", "Grace", "Jack", "Molly", "Frank", "Nina",
		"Sam", "Ruby", "Leo", "Hélène", "Walter", "Daisy", "Ray", "Ingrid", "José", "Annie",
	}
	// Words that suit a genre, used about half the time for items of it.
	genreNouns = map[string][]string{
		"Action":      {"Fist", "Strike", "Vendetta", "Target", "Fury", "Showdown"},
		"Adventure":   {"Quest", "Treasure", "Expedition", "Lagoon", "Jungle"},
		"Animation":   {"Toybox", "Dragon", "Balloon", "Rabbit"},
		"Children's":  {"Puppy", "Treehouse", "Birthday", "Pony", "Giant"},
		"Comedy":      {"Wedding", "Vacation", "Neighbors", "Roommate", "Mix-Up"},
		"Crime":       {"Heist", "Racket", "Alibi", "Getaway", "Syndicate"},
		"Documentary": {"Chronicle", "Portrait", "Story", "Record"},
		"Drama":       {"Promise", "Silence", "Inheritance", "Farewell", "Confession"},
		"Fantasy":     {"Sorcerer", "Realm", "Spell", "Unicorn"},
		"Film-Noir":   {"Alibi", "Dame", "Double-Cross", "Rain"},
		"Horror":      {"Curse", "Haunting", "Crypt", "Ghoul", "Massacre", "Beast"},
		"Musical":     {"Melody", "Serenade", "Rhythm", "Café"},
		"Mystery":     {"Riddle", "Clue", "Disappearance", "Key"},
		"Romance":     {"Kiss", "Love", "Honeymoon", "Valentine", "Sweetheart"},
		"Sci-Fi":      {"Planet", "Android", "Galaxy", "Signal", "Orbit", "Invasion"},
		"Thriller":    {"Conspiracy", "Pursuit", "Trap", "Deadline", "Witness"},
		"War":         {"Battalion", "Trench", "Siege", "Convoy", "Front"},
		"Western":     {"Stagecoach", "Outlaw", "Sheriff", "Canyon", "Gunfighter"},
	}
	sequels = []string{"II", "III", "2", "Part II", "Returns"}
)

// titler draws unique titles from its own random stream.
type titler struct {
	r    *rng
	seen map[string]bool
}

func newTitler(r *rng) *titler { return &titler{r: r, seen: make(map[string]bool)} }

func (t *titler) oneOf(s []string) string { return s[t.r.intn(len(s))] }

// noun returns a noun, flavoured by one of the item's genres half the time.
func (t *titler) noun(genres []int) string {
	if len(genres) > 0 && t.r.intn(2) == 0 {
		return t.oneOf(genreNouns[Genres[genres[t.r.intn(len(genres))]]])
	}
	return t.oneOf(titleNouns)
}

// title returns a new title in ml-1m style: a leading article moves to the
// very end ("Last Winter, The"). Repeated titles become sequels, numbered
// before the article as MovieLens writes them ("Last Winter II, The").
func (t *titler) title(genres []int, year int) string {
	var s string
	switch t.r.intn(10) {
	case 0, 1:
		s = "The " + t.oneOf(titleAdjectives) + " " + t.noun(genres)
	case 2:
		s = "The " + t.noun(genres) + " of " + t.oneOf(titlePlaces)
	case 3:
		s = t.oneOf(titleAdjectives) + " " + t.noun(genres) + "s"
	case 4:
		s = t.oneOf(titleNames) + "'s " + t.noun(genres)
	case 5:
		s = "Return to " + t.oneOf(titlePlaces)
	case 6:
		s = t.noun(genres) + " and " + t.oneOf(titleNouns)
	case 7:
		s = "A " + t.noun(genres) + " in " + t.oneOf(titlePlaces)
	case 8:
		s = t.oneOf(titleAdjectives) + " " + t.oneOf(titlePlaces)
	default:
		s = t.noun(genres) + " of the " + t.oneOf(titleAdjectives) + " " + t.oneOf(titleNouns)
	}
	if rest, ok := strings.CutPrefix(s, "A "); ok && strings.ContainsAny(rest[:1], "AEIOU") {
		s = "An " + rest
	}
	base, article := s, ""
	for _, a := range []string{"The ", "A ", "An "} {
		if rest, ok := strings.CutPrefix(s, a); ok {
			base, article = rest, ", "+strings.TrimSpace(a)
			break
		}
	}
	s = base + article
	for k := 0; t.seen[s]; k++ {
		if k < len(sequels) {
			s = base + " " + sequels[k] + article
		} else {
			s = base + " " + strconv.Itoa(k+2) + article
		}
	}
	t.seen[s] = true
	return s
}
