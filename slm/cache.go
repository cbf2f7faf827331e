package slm

import "github.com/usersim/usersim/slm/lora"

// kvBlockSize is the number of positions in one block of a Cache.
const kvBlockSize = 64

// kvBlock holds the keys and values of kvBlockSize consecutive positions,
// for every layer, head-major: k[layer][(h*kvBlockSize + i)*headDim + d] is
// dimension d of kv head h at position start+i.
type kvBlock struct {
	k, v [][]float32
}

// Cache is the key/value cache of one sequence: the keys (after RoPE) and
// values of every position processed so far, for every layer.
//
// Positions are stored in blocks of 64. Fork shares the full blocks of a
// prefix between caches and copies only the partial last one; blocks are
// never written once full, so a forked prefix (a user's persona and profile)
// is computed once and read by any number of continuations, concurrently.
// A single Cache must not be used by two Forward calls at once.
type Cache struct {
	layers, kvHeads, headDim int
	blocks                   []*kvBlock
	n                        int
	// last holds the logits of position n-1 when the Forward that produced
	// it computed them; read-only, shared by forks.
	last []float32
	// adapter is the LoRA adapter the sequence runs with (NewAdapterCache).
	adapter *lora.Adapter
}

// NewCache returns an empty cache for m.
func (m *Model) NewCache() *Cache {
	c := &m.Config
	return &Cache{layers: c.Layers, kvHeads: c.KVHeads, headDim: c.HeadDim}
}

// Len is the number of cached positions: the position of the next token.
func (c *Cache) Len() int { return c.n }

// Fork returns a cache that holds the same positions as c and continues
// independently of it. It costs O(one block); the full blocks are shared.
// Forks of one cache may be taken concurrently, but not while a Forward
// appends to that cache.
func (c *Cache) Fork() *Cache {
	f := *c
	f.blocks = append([]*kvBlock(nil), c.blocks...)
	if c.n%kvBlockSize != 0 {
		last := len(f.blocks) - 1
		f.blocks[last] = f.blocks[last].clone()
	}
	return &f
}

// Truncate drops every position from n on (n ≤ Len), e.g. to undo a
// speculative continuation. Blocks shared with other caches are not changed.
func (c *Cache) Truncate(n int) {
	if n < 0 || n >= c.n {
		return
	}
	nb := (n + kvBlockSize - 1) / kvBlockSize
	c.blocks = c.blocks[:nb:nb]
	if n%kvBlockSize != 0 {
		c.blocks[nb-1] = c.blocks[nb-1].clone()
	}
	c.n = n
	c.last = nil
}

// Bytes is the memory the cache's blocks occupy (shared blocks included).
func (c *Cache) Bytes() int64 {
	return int64(len(c.blocks)) * int64(c.layers) * 2 * int64(c.kvHeads*kvBlockSize*c.headDim) * 4
}

func (b *kvBlock) clone() *kvBlock {
	nb := &kvBlock{k: make([][]float32, len(b.k)), v: make([][]float32, len(b.v))}
	for l := range b.k {
		nb.k[l] = append([]float32(nil), b.k[l]...)
		nb.v[l] = append([]float32(nil), b.v[l]...)
	}
	return nb
}

// grow makes room for n more positions.
func (c *Cache) grow(n int) {
	for len(c.blocks)*kvBlockSize < c.n+n {
		b := &kvBlock{k: make([][]float32, c.layers), v: make([][]float32, c.layers)}
		size := c.kvHeads * kvBlockSize * c.headDim
		for l := range b.k {
			b.k[l] = make([]float32, size)
			b.v[l] = make([]float32, size)
		}
		c.blocks = append(c.blocks, b)
	}
}

// put stores the key and value rows (kvHeads*headDim wide) of position pos
// in layer l. The position must lie in a block that this cache owns.
func (c *Cache) put(l, pos int, k, v []float32) {
	b := c.blocks[pos/kvBlockSize]
	i := pos % kvBlockSize
	hd := c.headDim
	for h := 0; h < c.kvHeads; h++ {
		off := (h*kvBlockSize + i) * hd
		copy(b.k[l][off:off+hd], k[h*hd:(h+1)*hd])
		copy(b.v[l][off:off+hd], v[h*hd:(h+1)*hd])
	}
}

// gather copies positions [from, to) of kv head h in layer l into k and v
// (contiguous, (to-from)×headDim each).
func (c *Cache) gather(l, h, from, to int, k, v []float32) {
	hd := c.headDim
	for p := from; p < to; {
		b := c.blocks[p/kvBlockSize]
		i := p % kvBlockSize
		cnt := min(kvBlockSize-i, to-p)
		off := (h*kvBlockSize + i) * hd
		dst := (p - from) * hd
		copy(k[dst:dst+cnt*hd], b.k[l][off:off+cnt*hd])
		copy(v[dst:dst+cnt*hd], b.v[l][off:off+cnt*hd])
		p += cnt
	}
}
