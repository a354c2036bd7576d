package reliability

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"strconv"
)

// stream is one direction of one soak connection. Message seq of a stream
// is a pure function of its seed and seq, so the receiver regenerates what
// the sender sent and compares byte for byte. Each message also carries
// its sequence number, length and a CRC-32 of its body in a header, so a
// mismatch says whether a message was lost, reordered or corrupted.
type stream struct{ seed uint64 }

// headerLen is the length of "seq=%016x len=%08x crc=%08x|".
const headerLen = 47

// endPrefix starts the message that ends a stream: "END:<count>". No
// generated message starts with it (they start with "seq=").
const endPrefix = "END:"

// size picks a message size: mostly small, a few large, 0 B to 1 MiB
// (about 6 KiB on average).
func size(r *rand.Rand) int {
	switch p := r.IntN(1000); {
	case p < 20:
		return r.IntN(headerLen) // 0 B, and too short for a whole header
	case p < 800:
		return headerLen + r.IntN(512)
	case p < 950:
		return 512 + r.IntN(16<<10)
	case p < 995:
		return 16<<10 + r.IntN(112<<10)
	default:
		return 128<<10 + r.IntN(896<<10+1)
	}
}

// message returns message seq of the stream: text (ASCII letters) or
// binary, its header then its body, cut to its size.
func (s stream) message(seq uint64) (text bool, p []byte) {
	r := rand.New(rand.NewPCG(s.seed, seq))
	n := size(r)
	text = r.IntN(2) == 0
	body := make([]byte, max(0, n-headerLen))
	var word [8]byte
	for i := 0; i < len(body); i += 8 {
		binary.LittleEndian.PutUint64(word[:], r.Uint64())
		copy(body[i:], word[:])
	}
	if text {
		for i, b := range body {
			body[i] = 'a' + b%26
		}
	}
	p = make([]byte, 0, max(n, headerLen))
	p = fmt.Appendf(p, "seq=%016x len=%08x crc=%08x|", seq, n, crc32.ChecksumIEEE(body))
	p = append(p, body...)
	return text, p[:n]
}

// verify checks that a received message is message seq of the stream and
// says what went wrong if not.
func (s stream) verify(seq uint64, text bool, got []byte) error {
	wantText, want := s.message(seq)
	if text == wantText && bytes.Equal(got, want) {
		return nil
	}
	if len(got) >= headerLen && bytes.HasPrefix(got, []byte("seq=")) {
		gotSeq, _ := strconv.ParseUint(string(got[4:20]), 16, 64)
		gotLen, _ := strconv.ParseUint(string(got[25:33]), 16, 64)
		gotCRC, _ := strconv.ParseUint(string(got[38:46]), 16, 64)
		switch {
		case gotSeq != seq:
			return fmt.Errorf("message %d: got message %d instead (lost or reordered)", seq, gotSeq)
		case int(gotLen) != len(got):
			return fmt.Errorf("message %d: %d bytes, its header says %d (truncated or merged)", seq, len(got), gotLen)
		case uint64(crc32.ChecksumIEEE(got[headerLen:])) != gotCRC:
			return fmt.Errorf("message %d: body does not match its CRC-32 (corrupted)", seq)
		}
	}
	return fmt.Errorf("message %d: got %d bytes (text %v), want %d bytes (text %v)", seq, len(got), text, len(want), wantText)
}

// endMessage is the last message of a stream of count messages.
func endMessage(count uint64) []byte { return []byte(endPrefix + strconv.FormatUint(count, 10)) }

// receiver checks one stream as it arrives.
type receiver struct {
	stream
	next  uint64 // the sequence number expected next
	bytes int64
	ended bool
	err   error // the first mismatch
}

// take checks one received message; it returns true for the end message.
func (r *receiver) take(text bool, p []byte) bool {
	if bytes.HasPrefix(p, []byte(endPrefix)) {
		r.ended = true
		if count, err := strconv.ParseUint(string(p[len(endPrefix):]), 10, 64); err != nil || count != r.next {
			r.fail(fmt.Errorf("end message %q after %d messages", p, r.next))
		}
		return true
	}
	if err := r.verify(r.next, text, p); err != nil {
		r.fail(err)
	}
	r.next++
	r.bytes += int64(len(p))
	return false
}

func (r *receiver) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}
