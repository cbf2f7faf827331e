package gguf

import (
	"fmt"
	"math"
	"strings"
)

// Type is the type of a metadata value (gguf_metadata_value_type).
type Type uint32

// Metadata value types.
const (
	TypeUint8   Type = 0
	TypeInt8    Type = 1
	TypeUint16  Type = 2
	TypeInt16   Type = 3
	TypeUint32  Type = 4
	TypeInt32   Type = 5
	TypeFloat32 Type = 6
	TypeBool    Type = 7
	TypeString  Type = 8
	TypeArray   Type = 9
	TypeUint64  Type = 10
	TypeInt64   Type = 11
	TypeFloat64 Type = 12
	numTypes    Type = 13
)

var typeNames = [numTypes]string{"uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "bool", "string", "array", "uint64", "int64", "float64"}

func (t Type) String() string {
	if t < numTypes {
		return typeNames[t]
	}
	return fmt.Sprintf("Type(%d)", uint32(t))
}

// size returns the encoded size of a fixed-size scalar type, or 0.
func (t Type) size() int {
	switch t {
	case TypeUint8, TypeInt8, TypeBool:
		return 1
	case TypeUint16, TypeInt16:
		return 2
	case TypeUint32, TypeInt32, TypeFloat32:
		return 4
	case TypeUint64, TypeInt64, TypeFloat64:
		return 8
	}
	return 0
}

// Value is a typed metadata value. Its Go representation (see Any) is one
// of uint8, int8, uint16, int16, uint32, int32, uint64, int64, float32,
// float64, bool, string; or, for arrays, a slice of one of those, or
// []Value for an array of arrays. The zero Value is invalid.
type Value struct {
	typ  Type
	elem Type // element type of an array
	v    any
}

// Type returns the value's type (TypeArray for arrays).
func (v Value) Type() Type { return v.typ }

// Elem returns the element type of an array value.
func (v Value) Elem() Type { return v.elem }

// Any returns the Go representation of the value.
func (v Value) Any() any { return v.v }

// Valid reports whether v holds a value.
func (v Value) Valid() bool { return v.v != nil }

// Len returns the number of elements of an array value, 0 otherwise.
func (v Value) Len() int {
	switch a := v.v.(type) {
	case []uint8:
		return len(a)
	case []int8:
		return len(a)
	case []uint16:
		return len(a)
	case []int16:
		return len(a)
	case []uint32:
		return len(a)
	case []int32:
		return len(a)
	case []uint64:
		return len(a)
	case []int64:
		return len(a)
	case []float32:
		return len(a)
	case []float64:
		return len(a)
	case []bool:
		return len(a)
	case []string:
		return len(a)
	case []Value:
		return len(a)
	}
	return 0
}

// Constructors for scalar values.

func Uint8(x uint8) Value     { return Value{typ: TypeUint8, v: x} }
func Int8(x int8) Value       { return Value{typ: TypeInt8, v: x} }
func Uint16(x uint16) Value   { return Value{typ: TypeUint16, v: x} }
func Int16(x int16) Value     { return Value{typ: TypeInt16, v: x} }
func Uint32(x uint32) Value   { return Value{typ: TypeUint32, v: x} }
func Int32(x int32) Value     { return Value{typ: TypeInt32, v: x} }
func Uint64(x uint64) Value   { return Value{typ: TypeUint64, v: x} }
func Int64(x int64) Value     { return Value{typ: TypeInt64, v: x} }
func Float32(x float32) Value { return Value{typ: TypeFloat32, v: x} }
func Float64(x float64) Value { return Value{typ: TypeFloat64, v: x} }
func Bool(x bool) Value       { return Value{typ: TypeBool, v: x} }
func String(x string) Value   { return Value{typ: TypeString, v: x} }

// Array returns an array value. elems must be a slice of one of the scalar
// Go types listed on Value, or []Value whose elements are all arrays (an
// array of arrays).
func Array(elems any) (Value, error) {
	var e Type
	switch a := elems.(type) {
	case []uint8:
		e = TypeUint8
	case []int8:
		e = TypeInt8
	case []uint16:
		e = TypeUint16
	case []int16:
		e = TypeInt16
	case []uint32:
		e = TypeUint32
	case []int32:
		e = TypeInt32
	case []uint64:
		e = TypeUint64
	case []int64:
		e = TypeInt64
	case []float32:
		e = TypeFloat32
	case []float64:
		e = TypeFloat64
	case []bool:
		e = TypeBool
	case []string:
		e = TypeString
	case []Value:
		for i, x := range a {
			if x.typ != TypeArray {
				return Value{}, fmt.Errorf("gguf: array element %d is a %v, want an array (GGUF arrays are homogeneous)", i, x.typ)
			}
		}
		e = TypeArray
	default:
		return Value{}, fmt.Errorf("gguf: cannot make an array of %T", elems)
	}
	return Value{typ: TypeArray, elem: e, v: elems}, nil
}

// Strings, Float32s, Int32s, ... return array values of the given slices.

func Strings(x []string) Value   { return Value{typ: TypeArray, elem: TypeString, v: x} }
func Float32s(x []float32) Value { return Value{typ: TypeArray, elem: TypeFloat32, v: x} }
func Int32s(x []int32) Value     { return Value{typ: TypeArray, elem: TypeInt32, v: x} }
func Uint32s(x []uint32) Value   { return Value{typ: TypeArray, elem: TypeUint32, v: x} }

// AsString returns the value if it is a string.
func (v Value) AsString() (string, bool) {
	s, ok := v.v.(string)
	return s, ok
}

// AsBool returns the value if it is a bool.
func (v Value) AsBool() (bool, bool) {
	b, ok := v.v.(bool)
	return b, ok
}

// AsUint returns the value if it is an integer of any type that is not
// negative.
func (v Value) AsUint() (uint64, bool) {
	switch x := v.v.(type) {
	case uint8:
		return uint64(x), true
	case uint16:
		return uint64(x), true
	case uint32:
		return uint64(x), true
	case uint64:
		return x, true
	}
	i, ok := v.AsInt()
	if !ok || i < 0 {
		return 0, false
	}
	return uint64(i), true
}

// AsInt returns the value if it is an integer of any type that fits in an
// int64.
func (v Value) AsInt() (int64, bool) {
	switch x := v.v.(type) {
	case int8:
		return int64(x), true
	case int16:
		return int64(x), true
	case int32:
		return int64(x), true
	case int64:
		return x, true
	case uint8:
		return int64(x), true
	case uint16:
		return int64(x), true
	case uint32:
		return int64(x), true
	case uint64:
		if x > math.MaxInt64 {
			return 0, false
		}
		return int64(x), true
	}
	return 0, false
}

// AsFloat returns the value if it is a float32 or float64.
func (v Value) AsFloat() (float64, bool) {
	switch x := v.v.(type) {
	case float32:
		return float64(x), true
	case float64:
		return x, true
	}
	return 0, false
}

// String formats the value for display; long arrays are abbreviated.
func (v Value) String() string {
	if v.typ != TypeArray {
		if s, ok := v.v.(string); ok {
			return fmt.Sprintf("%q", s)
		}
		return fmt.Sprint(v.v)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "[%d]%v{", v.Len(), v.elem)
	const show = 8
	n := min(v.Len(), show)
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(v.index(i).String())
	}
	if v.Len() > show {
		b.WriteString(", ...")
	}
	b.WriteString("}")
	return b.String()
}

// index returns element i of an array value.
func (v Value) index(i int) Value {
	switch a := v.v.(type) {
	case []uint8:
		return Uint8(a[i])
	case []int8:
		return Int8(a[i])
	case []uint16:
		return Uint16(a[i])
	case []int16:
		return Int16(a[i])
	case []uint32:
		return Uint32(a[i])
	case []int32:
		return Int32(a[i])
	case []uint64:
		return Uint64(a[i])
	case []int64:
		return Int64(a[i])
	case []float32:
		return Float32(a[i])
	case []float64:
		return Float64(a[i])
	case []bool:
		return Bool(a[i])
	case []string:
		return String(a[i])
	case []Value:
		return a[i]
	}
	return Value{}
}

// KV is one metadata entry.
type KV struct {
	Key   string
	Value Value
}
