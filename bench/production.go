package main

// Production mode (-production): Cairn runs as `cairn start` with a signing
// key and an event key, so every app call is canonicalized and signed and
// every answer verified. -production=both runs each app mode twice in one
// invocation, dev then production, to compare what signing costs Cairn.

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/cairn-dev/cairn/sdk/signing"
)

const (
	modeDev  = "dev"
	modeProd = "production"
)

// securityModes is the value of -production: false (dev only, the
// default), true (production only) or both (dev, then production). It is a
// boolean flag that also takes "both", so that plain -production works.
type securityModes []string

func (m *securityModes) IsBoolFlag() bool { return true }

func (m *securityModes) String() string {
	switch {
	case m == nil || len(*m) == 0 || (len(*m) == 1 && (*m)[0] == modeDev):
		return "false"
	case len(*m) == 1:
		return "true"
	default:
		return "both"
	}
}

func (m *securityModes) Set(s string) error {
	switch strings.ToLower(s) {
	case "false", "0", "f":
		*m = []string{modeDev}
	case "true", "1", "t":
		*m = []string{modeProd}
	case "both":
		*m = []string{modeDev, modeProd}
	default:
		return fmt.Errorf("want true, false or both, not %q", s)
	}
	return nil
}

// prodKeys are one production node's fresh keys.
type prodKeys struct {
	key      signing.Key
	eventKey string
}

// newProdKeys makes a random 32-byte signing key and event key, so no
// real key is ever involved in a bench run.
func newProdKeys() (*prodKeys, error) {
	b := make([]byte, 40)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	k, err := signing.ParseKey("signkey-bench-" + hex.EncodeToString(b[:32]))
	if err != nil {
		return nil, err
	}
	return &prodKeys{key: k, eventKey: "bench-" + hex.EncodeToString(b[32:])}, nil
}

// modeRun is one Cairn process of a bench invocation: an app mode in dev
// or production.
type modeRun struct {
	app, security, archive, ckpt string
	name                         string // go, go-production, ...: its dir and its name in errors
}

// modeRuns lists the Cairn processes to run, each app in each security
// mode: dev before production, so the pair runs back to back.
func modeRuns(apps, securities, archives, ckpts []string) []modeRun {
	var out []modeRun
	for _, a := range apps {
		for _, s := range securities {
			for _, ar := range archives {
				for _, ck := range ckpts {
					mr := modeRun{app: a, security: s, archive: ar, ckpt: ck, name: a}
					if s == modeProd {
						mr.name += "-" + modeProd
					}
					if ar == archiveOff {
						mr.name += "-archive-off"
					}
					if ck == ckptOff {
						mr.name += "-no-checkpointing"
					}
					out = append(out, mr)
				}
			}
		}
	}
	return out
}

// keys makes the production keys of a run (nil in dev).
func (mr modeRun) keys() (*prodKeys, error) {
	if mr.security != modeProd {
		return nil, nil
	}
	return newProdKeys()
}

// cryptoMeter adds up the time the raw app spends verifying Cairn's
// signatures and signing its answers. That work runs in the bench process,
// not in Cairn's, so it is not in Cairn's CPU figures; it is shown apart
// so the reader sees what the app side costs on the same cores.
type cryptoMeter struct {
	ns    atomic.Int64
	calls atomic.Int64 // verified requests
}

// take returns and clears the time per verified request.
func (m *cryptoMeter) take() (perCall time.Duration, calls int64) {
	ns, calls := m.ns.Swap(0), m.calls.Swap(0)
	if calls == 0 {
		return 0, 0
	}
	return time.Duration(ns / calls), calls
}

// noteCrypto puts the raw app's verify + sign time per call since the last
// take into r (nil: just reset). Only the raw app in production mode
// measures it (the SDK app's verifying and signing are inside the SDK: its
// app CPU per step, dev vs production, shows them).
func (e *env) noteCrypto(r *Result) {
	if e.crypto == nil {
		return
	}
	per, calls := e.crypto.take()
	if r == nil || calls == 0 {
		return
	}
	r.AppCryptoUsPerCall = float64(per.Nanoseconds()) / 1000
	r.Notes = append(r.Notes, fmt.Sprintf("raw app (in the bench process, not in Cairn's CPU): verifying Cairn's signature and signing its answer took %.1f µs per call, wall time (%d calls)",
		r.AppCryptoUsPerCall, calls))
}

// securityName is for log lines.
func securityName(keys *prodKeys) string {
	if keys != nil {
		return "cairn start, production mode"
	}
	return "cairn dev"
}

// verifyRequest checks Cairn's signature on a request as the SDK does in
// production (over the body as received) and puts the body back for the
// handler. It answers 401 itself when the signature is bad.
func (a *rawApp) verifyRequest(w http.ResponseWriter, r *http.Request) bool {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		writeSDK(w, http.StatusBadRequest, []byte(`{"message":"reading the body failed"}`))
		return false
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	t0 := time.Now()
	_, err = a.keys.Verify(r.Header.Get(signing.Header), body, t0)
	a.crypto.ns.Add(int64(time.Since(t0)))
	a.crypto.calls.Add(1)
	if err != nil {
		msg := []byte(`{"type":"internal","name":"Error","message":"Invalid signature: ` + err.Error() + `"}`)
		writeSDK(w, http.StatusUnauthorized, msg)
		return false
	}
	return true
}

// signedWriter marks a response the Go app must sign: writeSDK signs the
// body it writes (X-Inngest-Signature over the raw bytes, as the SDK does).
type signedWriter struct {
	http.ResponseWriter
	app *rawApp
}

func (s *signedWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *signedWriter) sign(body []byte) string {
	t0 := time.Now()
	sig := s.app.keys.Primary.Sign(body, t0)
	s.app.crypto.ns.Add(int64(time.Since(t0)))
	return sig
}

// signIfAsked adds the app's signature when w asks for one.
func signIfAsked(w http.ResponseWriter, body []byte) {
	if s, ok := w.(*signedWriter); ok {
		w.Header().Set(signing.Header, s.sign(body))
	}
}

// label names a result in tables, telling production results apart.
func (r *Result) label() string {
	l := r.App
	if r.Mode == modeProd {
		l += " prod"
	}
	if r.Archive == archiveOff {
		l += " no-archive"
	}
	if r.Checkpointing == ckptOff {
		l += " no-ckpt"
	}
	return l + " / " + r.Scenario
}

// Comparison is one app/scenario measured in both modes in one invocation.
type Comparison struct {
	App                  string  `json:"app"`
	Scenario             string  `json:"scenario"`
	DevCPUMsPerStep      float64 `json:"dev_cairn_cpu_ms_per_step"`
	ProdCPUMsPerStep     float64 `json:"production_cairn_cpu_ms_per_step"`
	CPURatio             float64 `json:"cpu_per_step_ratio"`
	DevStepsPerSec       float64 `json:"dev_steps_per_sec"`
	ProdStepsPerSec      float64 `json:"production_steps_per_sec"`
	StepsPerSecRatio     float64 `json:"steps_per_sec_ratio"`
	AppCryptoUsPerCall   float64 `json:"go_app_verify_sign_us_per_call,omitempty"`
	ProdExtraCPUMsPerRun float64 `json:"production_extra_cairn_cpu_ms_per_run"`
	// The app's CPU per step in each mode (Go apps: their share of the
	// bench process): for the SDK app the difference is its verifying and
	// signing.
	DevAppCPUMsPerStep  float64 `json:"dev_app_cpu_ms_per_step"`
	ProdAppCPUMsPerStep float64 `json:"production_app_cpu_ms_per_step"`
}

// compareModes pairs the dev and production results of the same app and
// scenario (burst and steady).
func compareModes(rs []*Result) []Comparison {
	var out []Comparison
	for _, d := range rs {
		if d.Mode != modeDev || d.Sleep != nil || d.Flow != nil || d.Steps == 0 {
			continue
		}
		for _, p := range rs {
			if p.Mode != modeProd || p.App != d.App || p.Archive != d.Archive || p.Checkpointing != d.Checkpointing || p.Scenario != d.Scenario || p.Steps == 0 {
				continue
			}
			c := Comparison{App: d.App, Scenario: d.Scenario,
				DevCPUMsPerStep: d.CPUSecPerStep * 1000, ProdCPUMsPerStep: p.CPUSecPerStep * 1000,
				DevStepsPerSec: d.StepsPerSec, ProdStepsPerSec: p.StepsPerSec,
				AppCryptoUsPerCall: p.AppCryptoUsPerCall,
				DevAppCPUMsPerStep: d.AppCPUMsPerStep, ProdAppCPUMsPerStep: p.AppCPUMsPerStep}
			if c.DevCPUMsPerStep > 0 {
				c.CPURatio = c.ProdCPUMsPerStep / c.DevCPUMsPerStep
			}
			if c.DevStepsPerSec > 0 {
				c.StepsPerSecRatio = c.ProdStepsPerSec / c.DevStepsPerSec
			}
			c.ProdExtraCPUMsPerRun = (c.ProdCPUMsPerStep - c.DevCPUMsPerStep) * stepsPerRun
			out = append(out, c)
		}
	}
	return out
}

func printComparison(w io.Writer, cs []Comparison) {
	fmt.Fprintln(w, "\nDev vs production (same invocation; ratio = production / dev)")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\tCairn CPU per step dev\tproduction\tratio\tsteps/s dev\tproduction\tratio\textra Cairn CPU per run\tapp CPU per step dev\tproduction\traw app verify+sign per call\t")
	for _, c := range cs {
		app := "-"
		if c.AppCryptoUsPerCall > 0 {
			app = fmt.Sprintf("%.1f µs", c.AppCryptoUsPerCall)
		}
		fmt.Fprintf(tw, "%s / %s\t%.3f ms\t%.3f ms\t%.2f\t%s\t%s\t%.2f\t%.3f ms\t%.3f ms\t%.3f ms\t%s\t\n", c.App, c.Scenario,
			c.DevCPUMsPerStep, c.ProdCPUMsPerStep, c.CPURatio, num(c.DevStepsPerSec), num(c.ProdStepsPerSec),
			c.StepsPerSecRatio, c.ProdExtraCPUMsPerRun, c.DevAppCPUMsPerStep, c.ProdAppCPUMsPerStep, app)
	}
	tw.Flush()
}
