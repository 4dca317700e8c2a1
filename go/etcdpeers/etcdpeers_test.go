package etcdpeers

import (
	"reflect"
	"testing"
	"time"
)

// recorder is a pool that records every Set.
type recorder struct{ sets [][]string }

func (r *recorder) Set(peers ...string) { r.sets = append(r.sets, peers) }

func TestPublishSetsTheSortedDistinctNonEmptyValuesOnlyWhenTheyChange(t *testing.T) {
	pool := &recorder{}
	r := &Registry{pool: pool, opts: Options{Logf: t.Logf}}

	r.publish(map[string]string{
		"/p/http://b:2": "http://b:2",
		"/p/http://a:1": "http://a:1",
		"/p/alias":      "http://b:2", // same value under another key: once
		"/p/empty":      "",           // empty values are not peers
	}, 7)
	r.publish(map[string]string{"/p/http://a:1": "http://a:1", "/p/http://b:2": "http://b:2"}, 8)
	r.publish(map[string]string{"/p/http://b:2": "http://b:2"}, 9)

	want := [][]string{{"http://a:1", "http://b:2"}, {"http://b:2"}}
	if !reflect.DeepEqual(pool.sets, want) {
		t.Errorf("Set calls = %q, want %q", pool.sets, want)
	}
	if got := r.Peers(); !reflect.DeepEqual(got, []string{"http://b:2"}) {
		t.Errorf("Peers() = %q", got)
	}
	if got := r.Status().Revision; got != 9 {
		t.Errorf("Status().Revision = %d, want 9", got)
	}
}

func TestRegisterRejectsBadArguments(t *testing.T) {
	pool := &recorder{}
	for name, call := range map[string]func() (*Registry, error){
		"empty self": func() (*Registry, error) {
			return Register("", pool, Options{Endpoints: []string{"http://127.0.0.1:1"}})
		},
		"nil pool": func() (*Registry, error) {
			return Register("http://a:1", nil, Options{Endpoints: []string{"http://127.0.0.1:1"}})
		},
		"no endpoints": func() (*Registry, error) { return Register("http://a:1", pool, Options{}) },
		"TTL under 1s": func() (*Registry, error) {
			return Register("http://a:1", pool, Options{Endpoints: []string{"http://127.0.0.1:1"}, TTL: 500 * time.Millisecond})
		},
	} {
		if registry, err := call(); err == nil {
			registry.Close()
			t.Errorf("%s: no error", name)
		}
	}
}
