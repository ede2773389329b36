package peerdial

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// bindAddressOnly makes a socket bound to an address with port 0 get its
// port at connect time, not at bind time. Without it the kernel hands out
// ports from the pool it keeps for listeners (bind(0) and connect() draw
// ports of different parity), so a node restarting on a port picked the
// same way (tests, the chaos harness) could find it taken by a peer's
// outbound connection.
func bindAddressOnly(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
	})
	if err != nil {
		return err
	}
	return serr
}
