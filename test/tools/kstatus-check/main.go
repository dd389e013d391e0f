// kstatus-check: how GitOps tools read metalbox objects. For every object given (a JSON list on
// stdin, as the apiserver returned it) it prints one JSON line with
//   - kstatus: sigs.k8s.io/cli-utils' kstatus (what Flux and kpt compute), and
//   - argo: the object's Argo CD health check from an argocd-cm's data (key
//     resource.customizations.health.<group>_<kind>), run the way Argo CD runs such a script:
//     gopher-lua with only the package, base and table libraries (no string or os library), the
//     object as the global `obj`, and the returned table's status and message.
//
// Usage: kstatus-check <argocd-cm data as a JSON object> < objects.json
package main

import (
	"encoding/json"
	"fmt"
	"os"

	lua "github.com/yuin/gopher-lua"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type health struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

type result struct {
	Kind    string  `json:"kind"`
	Name    string  `json:"name"`
	Kstatus health  `json:"kstatus"`
	Argo    *health `json:"argo,omitempty"`
	Error   string  `json:"error,omitempty"`
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: kstatus-check <argocd-cm data.json> < objects.json")
		os.Exit(2)
	}
	var scripts map[string]string
	if raw, err := os.ReadFile(os.Args[1]); err != nil || json.Unmarshal(raw, &scripts) != nil {
		fmt.Fprintln(os.Stderr, "reading the argocd-cm data:", os.Args[1])
		os.Exit(2)
	}
	var objects []json.RawMessage
	if err := json.NewDecoder(os.Stdin).Decode(&objects); err != nil {
		fmt.Fprintln(os.Stderr, "reading objects:", err)
		os.Exit(2)
	}
	out := json.NewEncoder(os.Stdout)
	for _, raw := range objects {
		// As the tools read it: integers as int64 (a plain JSON decode gives float64).
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(raw); err != nil {
			fmt.Fprintln(os.Stderr, "reading an object:", err)
			os.Exit(2)
		}
		r := result{Kind: u.GetKind(), Name: u.GetName()}
		if res, err := status.Compute(u); err != nil {
			r.Error = "kstatus: " + err.Error()
		} else {
			r.Kstatus = health{Status: res.Status.String(), Message: res.Message}
		}
		gvk := u.GroupVersionKind()
		if src, ok := scripts["resource.customizations.health."+gvk.Group+"_"+gvk.Kind]; ok {
			h, err := argoHealth(src, u.Object)
			if err != nil {
				r.Error = "argo: " + err.Error()
			} else {
				r.Argo = h
			}
		}
		if err := out.Encode(r); err != nil {
			os.Exit(1)
		}
	}
}

// Argo CD accepts only these; anything else it shows as Unknown.
var argoStatuses = map[string]bool{
	"Healthy": true, "Progressing": true, "Degraded": true, "Suspended": true, "Missing": true, "Unknown": true,
}

func argoHealth(script string, obj map[string]any) (*health, error) {
	L := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer L.Close()
	for name, open := range map[string]lua.LGFunction{
		lua.LoadLibName: lua.OpenPackage,
		lua.BaseLibName: lua.OpenBase,
		lua.TabLibName:  lua.OpenTable,
	} {
		if err := L.CallByParam(lua.P{Fn: L.NewFunction(open), NRet: 0, Protect: true}, lua.LString(name)); err != nil {
			return nil, err
		}
	}
	L.SetGlobal("obj", toLua(L, obj))
	if err := L.DoString(script); err != nil {
		return nil, err
	}
	ret, ok := L.Get(-1).(*lua.LTable)
	if !ok {
		return nil, fmt.Errorf("the script returned %s, not a table", L.Get(-1).Type())
	}
	h := &health{Status: lua.LVAsString(ret.RawGetString("status")), Message: lua.LVAsString(ret.RawGetString("message"))}
	if !argoStatuses[h.Status] {
		return nil, fmt.Errorf("invalid health status %q", h.Status)
	}
	return h, nil
}

// toLua converts decoded JSON into Lua values: objects and arrays become tables (arrays 1-based).
func toLua(L *lua.LState, v any) lua.LValue {
	switch x := v.(type) {
	case nil:
		return lua.LNil
	case bool:
		return lua.LBool(x)
	case float64:
		return lua.LNumber(x)
	case int64:
		return lua.LNumber(x)
	case string:
		return lua.LString(x)
	case []any:
		t := L.CreateTable(len(x), 0)
		for _, item := range x {
			t.Append(toLua(L, item))
		}
		return t
	case map[string]any:
		t := L.CreateTable(0, len(x))
		for k, item := range x {
			t.RawSetString(k, toLua(L, item))
		}
		return t
	}
	return lua.LNil
}
