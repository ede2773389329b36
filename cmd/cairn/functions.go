package main

import (
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"
)

// cmdFunctions lists the registered functions: id (and the short id that
// names it where unique), app, triggers, flow control.
func cmdFunctions(args []string) error {
	var asJSON bool
	_, base, err := clientFlags("functions", "[--json]", args, func(fs *flag.FlagSet) {
		fs.BoolVar(&asJSON, "json", false, "print JSON")
	})
	if stop, err := handleHelp(err); stop {
		return err
	}
	var out struct {
		Data []struct {
			ID       string   `json:"id"`
			ShortID  string   `json:"short_id"`
			AppID    string   `json:"app_id"`
			Triggers []string `json:"triggers"`
			Retries  int      `json:"retries"`
			Flow     []string `json:"flow"`
		} `json:"data"`
	}
	if printed, err := getOrPrint(base+"/v1/functions", asJSON, &out); printed || err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FUNCTION\tSHORT ID\tAPP\tTRIGGERS\tRETRIES\tFLOW CONTROL")
	for _, f := range out.Data {
		flow := strings.Join(f.Flow, ", ")
		if flow == "" {
			flow = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", f.ID, f.ShortID, f.AppID, strings.Join(f.Triggers, ", "), f.Retries, flow)
	}
	return tw.Flush()
}
