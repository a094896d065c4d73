package main

import (
	"os"
	"testing"
)

func TestSampleProcReadsThisProcess(t *testing.T) {
	s, err := sampleProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// A Go test binary has a few MiB resident; a unit mix-up (bytes vs
	// kB vs pages) would be off by a factor of 1024 or 4.
	if s.rssKB < 1<<10 || s.rssKB > 4<<20 {
		t.Fatalf("VmRSS of this test = %d kB, want between 1 MiB and 4 GiB", s.rssKB)
	}
	if s.cpuSeconds < 0 {
		t.Fatalf("CPU time %v < 0", s.cpuSeconds)
	}
	if _, err := sampleProc(1 << 30); err == nil {
		t.Fatal("sampleProc of a pid that cannot exist did not fail")
	}
}
