//go:build !linux

package engine

type splicer struct{}

func (sp *splicer) bind() {}

func canSplice(src, dst *leg) bool { return false }

func (s *Session) spliceChunk(src, dst *leg, max int64, hdr, head []byte) (int64, error, error, bool) {
	return 0, nil, nil, false
}

const spliceMin = 1 << 62

// SplicedBytes is always 0 where splice(2) is not used.
func SplicedBytes() int64 { return 0 }
