package pipeline

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Agent adapters: how an agent configuration picks its LoRA adapter.
const (
	// AdapterPersona gives every user the adapter of its persona.
	AdapterPersona = "persona"
	// AdapterShared gives every user one adapter trained on all users
	// (K = 1).
	AdapterShared = "shared"
	// AdapterNone prompts the frozen base (zero-shot).
	AdapterNone = "none"
	// AdapterUser gives each of a sample of users an adapter of its own
	// (started from the shared one), scored on those users' test rows
	// beside the same family's other agents.
	AdapterUser = "user"
)

// AgentSpec is one agent configuration of an experiment: a prompt family
// (variant, with or without the memory section) and the adapters it runs
// with. Every configuration is scored on the same test rows.
type AgentSpec struct {
	// Name labels it in the report; empty: derived ("agent-default-K4").
	Name string `yaml:"name,omitempty" json:"name,omitempty"`
	// Variant is the prompt: "default" (usersim's: a collaborative anchor
	// and the key facts next to the answer) or "paper" (the paper's).
	Variant string `yaml:"variant" json:"variant"`
	// MsOnly leaves the memory section out (the profile Ms only, no Ml).
	MsOnly bool `yaml:"ms_only,omitempty" json:"ms_only,omitempty"`
	// Adapter is persona, shared or none.
	Adapter string `yaml:"adapter" json:"adapter"`
	// K is the number of personas of a persona agent: 0 takes the
	// experiment's (Config.K, or the elbow's choice); another value
	// clusters the same profile embeddings again into K personas, for the
	// K sweep of the report.
	K int `yaml:"k,omitempty" json:"k,omitempty"`
	// Users is the number of sampled users a per-user agent trains
	// adapters for (default 8).
	Users int `yaml:"users,omitempty" json:"users,omitempty"`
}

// ParseAgentSpec reads the command line's form of an agent spec,
// VARIANT[-ms]:ADAPTER[:K], as in "default:persona", "paper:shared",
// "paper-ms:none" or "paper:persona:8".
func ParseAgentSpec(s string) (AgentSpec, error) {
	parts := strings.Split(strings.TrimSpace(s), ":")
	if len(parts) < 2 || len(parts) > 3 {
		return AgentSpec{}, fmt.Errorf("agent %q: want VARIANT[-ms]:ADAPTER[:K], e.g. default:persona", s)
	}
	sp := AgentSpec{Variant: parts[0], Adapter: parts[1]}
	if base, ok := strings.CutSuffix(sp.Variant, "-ms"); ok {
		sp.Variant, sp.MsOnly = base, true
	}
	if len(parts) == 3 {
		n, err := strconv.Atoi(parts[2])
		switch {
		case err != nil || n < 1 || (sp.Adapter != AdapterPersona && sp.Adapter != AdapterUser):
			return AgentSpec{}, fmt.Errorf("agent %q: %q: want a positive number after persona (K) or user (users)", s, parts[2])
		case sp.Adapter == AdapterUser:
			sp.Users = n
		default:
			sp.K = n
		}
	}
	return sp, sp.validate()
}

// String is the command line's form.
func (a AgentSpec) String() string {
	s := a.family().name() + ":" + a.Adapter
	if a.K > 0 {
		s += ":" + strconv.Itoa(a.K)
	}
	if a.Users > 0 {
		s += ":" + strconv.Itoa(a.Users)
	}
	return s
}

// users returns the number of users a per-user agent trains adapters for.
func (a AgentSpec) users() int {
	if a.Users > 0 {
		return a.Users
	}
	return 8
}

// personas returns the agent's number of personas, main being the
// experiment's.
func (a AgentSpec) personas(main int) int {
	if a.K > 0 {
		return a.K
	}
	return main
}

func (a AgentSpec) validate() error {
	if a.Variant != "paper" && a.Variant != "default" {
		return fmt.Errorf("agent %s: variant %q: want paper or default", a.String(), a.Variant)
	}
	if !slices.Contains([]string{AdapterPersona, AdapterShared, AdapterNone, AdapterUser}, a.Adapter) {
		return fmt.Errorf("agent %s: adapter %q: want persona, shared, none or user", a.String(), a.Adapter)
	}
	if a.Users < 0 || (a.Users > 0 && a.Adapter != AdapterUser) {
		return fmt.Errorf("agent %s: users %d: only per-user agents take a number of users", a.String(), a.Users)
	}
	if a.K < 0 || (a.K > 0 && a.Adapter != AdapterPersona) {
		return fmt.Errorf("agent %s: k %d: only persona agents take a K", a.String(), a.K)
	}
	return nil
}

// label is the report's name of the configuration; k is the number of
// personas.
func (a AgentSpec) label(k int) string {
	if a.Name != "" {
		return a.Name
	}
	suffix := map[string]string{AdapterPersona: "K" + strconv.Itoa(a.personas(k)), AdapterShared: "K1", AdapterNone: "zeroshot",
		AdapterUser: "user" + strconv.Itoa(a.users())}[a.Adapter]
	return "agent-" + a.family().name() + "-" + suffix
}

// family is a prompt family: the adapters trained on one family's prompts
// serve only that family.
type family struct {
	Variant string `json:"variant"`
	MsOnly  bool   `json:"ms_only"`
}

func (a AgentSpec) family() family { return family{Variant: a.Variant, MsOnly: a.MsOnly} }

// name is the family's directory name under adapters/: "default",
// "paper-ms".
func (f family) name() string {
	if f.MsOnly {
		return f.Variant + "-ms"
	}
	return f.Variant
}

// families returns the distinct prompt families of specs in first-seen
// order; trained restricts them to families some agent trains adapters
// for.
func families(specs []AgentSpec, trained bool) []family {
	var out []family
	for _, s := range specs {
		if trained && s.Adapter == AdapterNone {
			continue
		}
		if f := s.family(); !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

// needsShared reports whether family f trains a shared adapter: always
// when persona adapters start from it, and when an agent uses it.
func needsShared(specs []AgentSpec, f family, startFromShared bool) bool {
	for _, s := range specs {
		if s.family() != f {
			continue
		}
		if s.Adapter == AdapterShared || ((s.Adapter == AdapterPersona || s.Adapter == AdapterUser) && startFromShared) {
			return true
		}
	}
	return false
}

// personaKs returns the persona counts family f trains adapters for (main
// for K = 0), ascending; nil when it trains none.
func personaKs(specs []AgentSpec, f family, main int) []int {
	var ks []int
	for _, s := range specs {
		if s.family() == f && s.Adapter == AdapterPersona && !slices.Contains(ks, s.personas(main)) {
			ks = append(ks, s.personas(main))
		}
	}
	slices.Sort(ks)
	return ks
}

// extraKs returns the persona counts other than the experiment's that some
// agent asks for (K ≠ 0), ascending.
func extraKs(specs []AgentSpec) []int {
	var ks []int
	for _, s := range specs {
		if s.Adapter == AdapterPersona && s.K > 0 && !slices.Contains(ks, s.K) {
			ks = append(ks, s.K)
		}
	}
	slices.Sort(ks)
	return ks
}

// personaAdapterName is the adapter name of persona p in a clustering into
// k personas: PersonaAdapter(p) for the experiment's K (main), and
// "kK/persona-p" for the K sweep's others.
func personaAdapterName(k, main, p int) string {
	if k == main {
		return PersonaAdapter(p)
	}
	return fmt.Sprintf("k%d/%s", k, PersonaAdapter(p))
}

// AdapterDir is the workspace-relative directory of a family's adapter
// ("shared" or PersonaAdapter(p)).
func AdapterDir(familyName, adapter string) string {
	return AdaptersDir + "/" + familyName + "/" + adapter
}

// userAdapterName is the adapter name of a per-user agent's user (its
// dense index, since source IDs may hold any character).
func userAdapterName(u int32) string { return fmt.Sprintf("users/u%d", u) }

// perUserCount returns the most users any per-user agent of family f
// trains adapters for (0: none); the agents share the first users of one
// seeded sample.
func perUserCount(specs []AgentSpec, f family) int {
	n := 0
	for _, s := range specs {
		if s.family() == f && s.Adapter == AdapterUser {
			n = max(n, s.users())
		}
	}
	return n
}
