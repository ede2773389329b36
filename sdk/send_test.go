package sdk_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/cairn-dev/cairn/sdk"
	"net/http/httptest"
)

// TestSend replays the captured plain sends: the events the SDK posts, the
// ids it returns, and the five tries with one seed when the server's
// answer lacks "status": 200.
func TestSend(t *testing.T) {
	loadFixtures(t)
	for _, tc := range []struct {
		file    string
		wantIDs []string
	}{
		{"071-event-send-ok.json", []string{"01JPROBEEVT000000000000002"}},
		{"072-event-send-response-without-status-field.json", nil},
	} {
		t.Run(tc.file, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join(fixturesDir, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			var fx fixture
			json.Unmarshal(raw, &fx)
			api := &fakeAPI{t: t}
			srv := httptest.NewServer(api)
			defer srv.Close()
			dev := true
			c, err := sdk.NewClient(sdk.ClientOpts{AppID: "probe-app", Dev: &dev, BaseURL: srv.URL})
			if err != nil {
				t.Fatal(err)
			}
			api.expect(fx.Outbound)
			ids, err := c.Send(context.Background(), sdk.Event[map[string]int]{Name: "app/probe.sent", Data: map[string]int{"n": 1}})
			if tc.wantIDs == nil {
				if err == nil || !strings.Contains(err.Error(), "200") {
					t.Fatalf("Send = %v, %v; want an error naming the server's answer", ids, err)
				}
			} else if err != nil || !reflect.DeepEqual(ids, tc.wantIDs) {
				t.Fatalf("Send = %v, %v; want %v", ids, err, tc.wantIDs)
			}
			got := api.done()
			compareOutbound(t, got, fx.Outbound)
			seeds := map[string]bool{}
			for _, r := range got {
				seeds[r.header.Get("X-Inngest-Event-Id-Seed")] = true
			}
			if len(seeds) != 1 {
				t.Errorf("%d tries carried %d seeds; a retry must reuse its seed", len(got), len(seeds))
			}
		})
	}
}
