package backrpc

// HasCapability reports whether the client announced capability name in
// its latest hello.
func (c ClientInfo) HasCapability(name string) bool { return c.Hello.Has(name) }
