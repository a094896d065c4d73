package shardsub

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// The client speaks RESP2 itself (see the package doc for why).
// This file is the little of the protocol it needs: writing a command as an
// array of bulk strings, and reading one reply or push of any type.

// respError is an error reply ("-MOVED 1234 127.0.0.1:7001").
type respError string

func (e respError) Error() string { return string(e) }

// maxBulk bounds a bulk string we accept, so a corrupt stream cannot make us
// allocate without limit. Presence payloads are a few hundred bytes.
const maxBulk = 1 << 20

// maxArray bounds an array's length for the same reason.
const maxArray = 1 << 16

// maxDepth bounds the nesting of arrays (a push is one level deep), so that
// a corrupt stream cannot recurse without limit either.
const maxDepth = 4

func writeCommand(w *bufio.Writer, args ...string) error {
	if _, err := fmt.Fprintf(w, "*%d\r\n", len(args)); err != nil {
		return err
	}
	for _, a := range args {
		if _, err := fmt.Fprintf(w, "$%d\r\n%s\r\n", len(a), a); err != nil {
			return err
		}
	}
	return w.Flush()
}

// readValue reads one RESP2 value: string (simple or bulk), respError,
// int64, []any (array), or nil (null bulk/array).
func readValue(r *bufio.Reader) (any, error) { return readDepth(r, 0) }

func readDepth(r *bufio.Reader, depth int) (any, error) {
	line, err := readLine(r)
	if err != nil {
		return nil, err
	}
	if len(line) == 0 {
		return nil, errors.New("resp: empty line")
	}
	body := string(line[1:])
	switch line[0] {
	case '+':
		return body, nil
	case '-':
		return respError(body), nil
	case ':':
		n, err := strconv.ParseInt(body, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("resp: bad integer %q", body)
		}
		return n, nil
	case '$':
		n, err := strconv.Atoi(body)
		if err != nil || n > maxBulk {
			return nil, fmt.Errorf("resp: bad bulk length %q", body)
		}
		if n < 0 {
			return nil, nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		if buf[n] != '\r' || buf[n+1] != '\n' {
			return nil, errors.New("resp: bulk string without CRLF")
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(body)
		if err != nil || n > maxArray {
			return nil, fmt.Errorf("resp: bad array length %q", body)
		}
		if n < 0 {
			return nil, nil
		}
		if depth >= maxDepth {
			return nil, fmt.Errorf("resp: arrays nested deeper than %d", maxDepth)
		}
		arr := make([]any, 0, min(n, 64)) // grows as elements really arrive
		for range n {
			v, err := readDepth(r, depth+1)
			if err != nil {
				return nil, err
			}
			arr = append(arr, v)
		}
		return arr, nil
	default:
		return nil, fmt.Errorf("resp: unexpected type byte %q", line[0])
	}
}

func readLine(r *bufio.Reader) ([]byte, error) {
	line, err := r.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, errors.New("resp: line too long")
		}
		return nil, err
	}
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return nil, errors.New("resp: line without CRLF")
	}
	return line[:len(line)-2], nil
}
