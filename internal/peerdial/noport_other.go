//go:build !linux

package peerdial

import "syscall"

// bindAddressOnly is Linux-only (IP_BIND_ADDRESS_NO_PORT); elsewhere the
// port is picked at bind time.
func bindAddressOnly(_, _ string, _ syscall.RawConn) error { return nil }
