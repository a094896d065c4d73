package server

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
)

// Buffer sizes of a WebSocket connection. net/http hands a hijacked
// connection over with 4 KiB read and write buffers, kept for the
// connection's life; presence frames are a few hundred bytes, and larger
// ones bypass a bufio buffer anyway, so smaller buffers cost a few more
// syscalls on big snapshots and save 6 KiB per idle connection.
const (
	connReadBuffer  = 1024
	connWriteBuffer = 1024
)

// smallBuffers is the ResponseWriter given to websocket.Accept: its Hijack
// returns the connection with small buffers. net/http's own buffers become
// garbage once the handler returns (the connection loop runs on its own
// goroutine). The hijacked connection is also stored in *conn, so that the
// server can cut it when a close handshake does not end.
type smallBuffers struct {
	http.ResponseWriter
	conn *net.Conn
}

// Hijack implements http.Hijacker.
func (w smallBuffers) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("the ResponseWriter cannot be hijacked")
	}
	conn, brw, err := hj.Hijack()
	if err != nil {
		return nil, nil, err
	}
	*w.conn = conn
	if n := brw.Reader.Buffered(); n > 0 {
		// Bytes the client sent right after its handshake: read them first.
		b, _ := brw.Peek(n)
		conn = &prefixedConn{Conn: conn, r: io.MultiReader(bytes.NewReader(bytes.Clone(b)), conn)}
	}
	return conn, bufio.NewReadWriter(bufio.NewReaderSize(conn, connReadBuffer), bufio.NewWriterSize(conn, connWriteBuffer)), nil
}

// prefixedConn reads bytes already received before reading the connection.
type prefixedConn struct {
	net.Conn
	r io.Reader
}

func (c *prefixedConn) Read(p []byte) (int, error) { return c.r.Read(p) }
