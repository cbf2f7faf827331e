package dataset

import (
	"errors"
	"fmt"
)

// ParseError reports bad input in a data file: which file, which line
// (1-based; 0 when the problem is not tied to one line) and which field.
type ParseError struct {
	File  string // path or name of the file
	Line  int    // 1-based line number; 0 for the whole file
	Field string // field name, e.g. "rating"; empty for the whole line
	Err   error
}

func (e *ParseError) Error() string {
	s := e.File
	if e.Line > 0 {
		s += fmt.Sprintf(":%d", e.Line)
	}
	if e.Field != "" {
		s += ": " + e.Field
	}
	return s + ": " + e.Err.Error()
}

func (e *ParseError) Unwrap() error { return e.Err }

// Errors that ParseError wraps, for errors.Is.
var (
	// ErrEmpty: a file has no data rows.
	ErrEmpty = errors.New("no data rows")
	// ErrFieldCount: a line has the wrong number of fields (e.g. truncated).
	ErrFieldCount = errors.New("wrong number of fields")
	// ErrOutOfScale: a rating is not one of the scale's values.
	ErrOutOfScale = errors.New("rating not on the scale")
	// ErrUnknownID: a rating names a user or item its metadata file lacks.
	ErrUnknownID = errors.New("unknown id")
	// ErrDuplicate: a (user, item) pair or an id occurs twice.
	ErrDuplicate = errors.New("duplicate")
	// ErrEncoding: text is neither consistent ISO-8859-1 nor clean UTF-8.
	ErrEncoding = errors.New("text encoding")
)

func perr(file string, line int, field string, err error) *ParseError {
	return &ParseError{File: file, Line: line, Field: field, Err: err}
}

func perrf(file string, line int, field string, format string, a ...any) *ParseError {
	return &ParseError{File: file, Line: line, Field: field, Err: fmt.Errorf(format, a...)}
}
