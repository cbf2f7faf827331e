// Package split divides a dataset's ratings into training and test rows:
// the paper's protocol (sampled users, per-user temporal 60/40) and a global
// random split for comparison with the classic literature. Splits are saved
// to disk and reloaded so that every model sees exactly the same rows.
package split

// Split names which rows of a dataset.Dataset's Ratings table are training
// data and which are test data. Rows are indices into the Ratings columns.
type Split struct {
	Protocol string  `json:"protocol"` // "paper" or "random"
	Seed     int64   `json:"seed"`
	Temporal bool    `json:"temporal"` // per-user split by time (false: seeded random order)
	Users    []int32 `json:"users"`    // the sampled (evaluated) users; all users for "random"
	Train    []int32 `json:"train"`    // training rows, ascending
	Test     []int32 `json:"test"`     // test rows, ascending
}
