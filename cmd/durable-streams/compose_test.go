package main

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// composeFile is the part of docker-compose.yml the test checks.
type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Profiles    []string          `yaml:"profiles"`
	Image       string            `yaml:"image"`
	Build       string            `yaml:"build"`
	Command     composeCommand    `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Volumes     []string          `yaml:"volumes"`
	// DependsOn is a list or a map of conditions; only the names matter.
	DependsOn yaml.Node `yaml:"depends_on"`
	// Networks is a list of names or a map of settings.
	Networks yaml.Node `yaml:"networks"`
}

// names returns the names of a list, or the keys of a map.
func names(n yaml.Node) []string {
	var out []string
	switch n.Kind {
	case yaml.SequenceNode:
		for _, c := range n.Content {
			out = append(out, c.Value)
		}
	case yaml.MappingNode:
		for i := 0; i < len(n.Content); i += 2 {
			out = append(out, n.Content[i].Value)
		}
	}
	return out
}

// address returns the service's fixed IPv4 address on network, if any.
func (s composeService) address(network string) string {
	var m map[string]struct {
		IPv4 string `yaml:"ipv4_address"`
	}
	if s.Networks.Kind != yaml.MappingNode || s.Networks.Decode(&m) != nil {
		return ""
	}
	return m[network].IPv4
}

// composeCommand is a command as a list, or as one string split at spaces.
type composeCommand []string

func (c *composeCommand) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*c = strings.Fields(n.Value)
		return nil
	}
	return n.Decode((*[]string)(c))
}

func (s composeService) dependsOn() []string { return names(s.DependsOn) }

// flag returns the value of --name in the command, "" if absent.
func (s composeService) flag(name string) string {
	if i := slices.Index(s.Command, "--"+name); i >= 0 && i+1 < len(s.Command) {
		return s.Command[i+1]
	}
	return ""
}

// TestComposeFile checks docker-compose.yml, which cannot run here (no
// container engine): the default services stay those of "docker compose
// up", the "cluster" profile is PostgreSQL, three nodes and the cluster
// edge, every server command and DS_ variable is one serve knows, the
// nodes differ where they must (id, advertise URL, data volume) and agree
// where they must (catalog, bucket), and every image is pinned.
func TestComposeFile(t *testing.T) {
	b, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var cf composeFile
	if err := yaml.Unmarshal(b, &cf); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	var usage bytes.Buffer
	if code := run(context.Background(), []string{"serve", "-h"}, &usage, &usage); code != exitOK {
		t.Fatalf("serve -h: exit %d", code)
	}
	knownFlag := func(name string) bool { return strings.Contains(usage.String(), "\n  -"+name+" ") }
	// The S3 credentials have no flags (they would show in process
	// listings); serve reads them from the environment only.
	envOnly := map[string]bool{"DS_S3_ACCESS_KEY_ID": true, "DS_S3_SECRET_ACCESS_KEY": true}
	knownEnv := func(name string) bool {
		return envOnly[name] || strings.Contains(usage.String(), name+")") || strings.Contains(usage.String(), name+",")
	}

	var single, cluster []string
	for name, s := range cf.Services {
		switch {
		case len(s.Profiles) == 0:
			single = append(single, name)
		case slices.Equal(s.Profiles, []string{"cluster"}):
			cluster = append(cluster, name)
		default:
			t.Errorf("service %s: profiles %q", name, s.Profiles)
		}
		if s.Image != "" && (!strings.Contains(s.Image, ":") || strings.HasSuffix(s.Image, ":latest")) {
			t.Errorf("service %s: image %q is not pinned", name, s.Image)
		}
		for _, dep := range s.dependsOn() {
			d, ok := cf.Services[dep]
			if !ok {
				t.Errorf("service %s depends on unknown %s", name, dep)
			} else if len(s.Profiles) == 0 && len(d.Profiles) > 0 {
				t.Errorf("default service %s depends on %s of profile %q", name, dep, d.Profiles)
			}
		}
		for _, v := range s.Volumes {
			src, _, _ := strings.Cut(v, ":")
			if strings.HasPrefix(src, "./") {
				rel := strings.TrimPrefix(src, "./")
				if _, err := os.Stat(filepath.Join("../..", rel)); err != nil {
					t.Errorf("service %s mounts %s: %v", name, src, err)
				}
			} else if _, ok := cf.Volumes[src]; !ok {
				t.Errorf("service %s uses undeclared volume %s", name, src)
			}
		}
		if s.Build == "" {
			continue
		}
		// A durable-streams server: flags and variables serve knows.
		if len(s.Command) == 0 || s.Command[0] != "serve" {
			t.Errorf("service %s: command %q, want serve ...", name, s.Command)
		}
		for _, a := range s.Command[1:] {
			if f, ok := strings.CutPrefix(a, "--"); ok && !knownFlag(f) {
				t.Errorf("service %s: serve has no flag %s", name, a)
			}
		}
		for k := range s.Environment {
			if strings.HasPrefix(k, "DS_") && !knownEnv(k) {
				t.Errorf("service %s: serve reads no variable %s", name, k)
			}
		}
	}
	slices.Sort(single)
	slices.Sort(cluster)
	if want := []string{"durable-streams", "minio", "minio-init", "nginx"}; !slices.Equal(single, want) {
		t.Errorf("default services %q, want %q (what docker compose up starts)", single, want)
	}
	if want := []string{"ds-1", "ds-2", "ds-3", "nginx-cluster", "postgres"}; !slices.Equal(cluster, want) {
		t.Errorf("cluster services %q, want %q", cluster, want)
	}

	// The nodes of the cluster.
	dsnHost := regexp.MustCompile(`@postgres:5432/`)
	one := cf.Services["durable-streams"]
	ids, volumes := map[string]bool{}, map[string]bool{}
	for _, name := range []string{"ds-1", "ds-2", "ds-3"} {
		s := cf.Services[name]
		if id := s.flag("node-id"); id != name || ids[id] {
			t.Errorf("%s: --node-id %q, want its service name", name, id)
		}
		ids[name] = true
		_, port, _ := strings.Cut(s.flag("addr"), ":")
		if u, err := url.Parse(s.flag("advertise-url")); err != nil || u.Scheme != "http" || u.Host != name+":"+port {
			t.Errorf("%s: --advertise-url %q, want http://%s:%s (its name on the compose network, its --addr port)", name, s.flag("advertise-url"), name, port)
		}
		if !dsnHost.MatchString(s.Environment["DS_CLUSTER_DSN"]) || s.Environment["DS_CLUSTER_DSN"] != cf.Services["ds-1"].Environment["DS_CLUSTER_DSN"] {
			t.Errorf("%s: DS_CLUSTER_DSN %q, want the postgres service's, the same on every node", name, s.Environment["DS_CLUSTER_DSN"])
		}
		if bucket := s.Environment["DS_S3_BUCKET"]; bucket == "" || bucket == one.Environment["DS_S3_BUCKET"] ||
			bucket != cf.Services["ds-1"].Environment["DS_S3_BUCKET"] || !strings.Contains(strings.Join(cf.Services["minio-init"].Command, " "), "local/"+bucket) {
			t.Errorf("%s: bucket %q: want one shared by the nodes, not the single node's, created by minio-init", name, bucket)
		}
		if !slices.Contains(s.dependsOn(), "postgres") {
			t.Errorf("%s does not wait for postgres", name)
		}
		for _, v := range s.Volumes {
			src, dst, _ := strings.Cut(v, ":")
			if dst == "/data" {
				if volumes[src] {
					t.Errorf("%s shares its data volume %s", name, src)
				}
				volumes[src] = true
			}
		}
	}
	if len(volumes) != 3 {
		t.Errorf("the nodes' data volumes: %v, want one each", volumes)
	}
	if pg := cf.Services["postgres"]; !strings.HasPrefix(pg.Image, "docker.io/library/postgres:") {
		t.Errorf("postgres image %q, want the official image pinned", pg.Image)
	}
	if edge := cf.Services["nginx-cluster"]; !slices.ContainsFunc(edge.Volumes, func(v string) bool {
		return strings.HasPrefix(v, "./deploy/nginx/durable-streams-cluster.conf.template:")
	}) {
		t.Errorf("nginx-cluster does not mount the cluster template: %q", edge.Volumes)
	}
	if edge := cf.Services["nginx-cluster"]; !slices.Contains(edge.Volumes, "./deploy/nginx/durable-streams-cluster.js:/etc/nginx/durable-streams-cluster.js:ro") {
		t.Errorf("nginx-cluster does not mount the cluster edge's script where the template imports it: %q", edge.Volumes)
	}

	// Requests reach a node from the edge and the other nodes only, on the
	// cluster network at fixed addresses, which every node trusts for
	// X-Forwarded-For (and nothing else).
	edge := cf.Services["nginx-cluster"]
	proxies := []string{edge.address("cluster")}
	for i, name := range []string{"ds-1", "ds-2", "ds-3"} {
		s := cf.Services[name]
		if nets := names(s.Networks); !slices.Equal(nets, []string{"cluster"}) {
			t.Errorf("%s is on networks %q, want cluster only", name, nets)
		}
		proxies = append(proxies, s.address("cluster"))
		if got, want := edge.Environment[fmt.Sprintf("DS_NODE_%d", i+1)], name+":"+strings.TrimPrefix(s.flag("addr"), "0.0.0.0:"); got != want {
			t.Errorf("nginx-cluster DS_NODE_%d = %q, want %q", i+1, got, want)
		}
		// The edge hashes node ids as the nodes do.
		if got, want := edge.Environment[fmt.Sprintf("DS_NODE_%d_ID", i+1)], s.flag("node-id"); got != want {
			t.Errorf("nginx-cluster DS_NODE_%d_ID = %q, want the node's --node-id %q", i+1, got, want)
		}
	}
	for _, name := range []string{"ds-1", "ds-2", "ds-3"} {
		got := strings.Split(cf.Services[name].Environment["DS_TRUSTED_PROXIES"], ",")
		if slices.Contains(proxies, "") || !slices.Equal(got, proxies) {
			t.Errorf("%s: DS_TRUSTED_PROXIES %q, want the fixed addresses of the edge and the nodes %q", name, got, proxies)
		}
	}
}
