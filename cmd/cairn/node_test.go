package main

import "testing"

// The cluster-secret rule of cairn start: required to join or to bootstrap
// with peers; a lone node gets one nobody knows.
func TestClusterSecretRule(t *testing.T) {
	if _, err := clusterSecret("", true); err == nil {
		t.Fatal("a clustered node started without a secret")
	}
	if s, err := clusterSecret("given-secret-0123", true); err != nil || s != "given-secret-0123" {
		t.Fatalf("given secret: %q %v", s, err)
	}
	a, err := clusterSecret("", false)
	b, _ := clusterSecret("", false)
	if err != nil || len(a) < 32 || a == b {
		t.Fatalf("a lone node's secrets %q, %q (%v): want long and unguessable", a, b, err)
	}
}
