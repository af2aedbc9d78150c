package curve

import (
	"errors"
	"fmt"
)

// Z85 (ZeroMQ RFC 32) is the text form of CURVE keys that libzmq,
// zmq_curve_keypair and every ZeroMQ binding use: 4 bytes become 5
// printable characters, so a 32-byte key is 40 characters.
const z85Alphabet = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"

var z85Decode = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for i := 0; i < len(z85Alphabet); i++ {
		t[z85Alphabet[i]] = byte(i)
	}
	return t
}()

// ErrZ85 is wrapped by every Z85 decoding error.
var ErrZ85 = errors.New("not Z85 text")

// Z85Encode encodes src, whose length must be a multiple of 4.
func Z85Encode(src []byte) (string, error) {
	if len(src)%4 != 0 {
		return "", fmt.Errorf("z85: %d bytes is not a multiple of 4", len(src))
	}
	dst := make([]byte, 0, len(src)/4*5)
	for i := 0; i < len(src); i += 4 {
		v := uint32(src[i])<<24 | uint32(src[i+1])<<16 | uint32(src[i+2])<<8 | uint32(src[i+3])
		var chunk [5]byte
		for j := 4; j >= 0; j-- {
			chunk[j] = z85Alphabet[v%85]
			v /= 85
		}
		dst = append(dst, chunk[:]...)
	}
	return string(dst), nil
}

// Z85Decode decodes s, whose length must be a multiple of 5.
func Z85Decode(s string) ([]byte, error) {
	if len(s)%5 != 0 {
		return nil, fmt.Errorf("%w: length %d is not a multiple of 5", ErrZ85, len(s))
	}
	dst := make([]byte, 0, len(s)/5*4)
	for i := 0; i < len(s); i += 5 {
		var v uint64
		for j := 0; j < 5; j++ {
			d := z85Decode[s[i+j]]
			if d == 0xff {
				return nil, fmt.Errorf("%w: character %q at %d", ErrZ85, s[i+j], i+j)
			}
			v = v*85 + uint64(d)
		}
		if v > 0xffffffff {
			return nil, fmt.Errorf("%w: group at %d overflows 32 bits", ErrZ85, i)
		}
		dst = append(dst, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	}
	return dst, nil
}
