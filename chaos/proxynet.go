package main

import "fmt"

// ---------------------------------------------------------------------------
// Partitions without root (reliability-plan.md §5.3, L2): node i listens on
// its own loopback IP 127.0.77.i and advertises faultnet proxies on 127.0.0.1
// for its Raft and HTTP ports (a faultnet.Mesh). Nodes dial peers from their
// own IP, so each proxy knows which node a connection comes from and can
// blackhole it. The load generator and the app use 127.0.0.1 and are never
// cut, as with the netns scenario.

func proxyIP(i int) string { return fmt.Sprintf("127.0.77.%d", i) }
