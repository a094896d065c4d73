// Package js hands the JavaScript client, the npm package
// @presencekit/client whose files are beside this one, to Go code that
// serves it: the gateway's /demo page loads it from the binary. There is one
// copy of the client: this package embeds src/index.js as it is.
package js

import _ "embed"

// Module is src/index.js, the client's ES module, byte for byte.
//
//go:embed src/index.js
var Module []byte
