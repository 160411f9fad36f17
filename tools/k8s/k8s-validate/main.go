// k8s-validate decodes every object of a multi-document YAML stream (what `helm template`
// prints) strictly into the real Go types that the Kubernetes API server and the Prometheus
// Operator use, and fails on the first thing they would refuse or silently drop:
//
//   - a kind that is not registered here (an unknown kind, or a CRD we do not know);
//   - an unknown field, a field in the wrong case, a duplicate field, a value of the wrong type
//     (apimachinery's strict serializer: the API server's own field validation);
//   - a name, label, annotation or ConfigMap key that the API server's validation refuses, a
//     ConfigMap larger than the 1 MiB an object may hold, a Deployment whose selector does not
//     select its own pod template.
//
// Usage: helm template ... | k8s-validate [-json] [FILE...]   (no FILE: standard input)
//
// It prints one line per object ("ok apps/v1 Deployment NAME", or "FAIL ..."), or with -json
// one JSON array of {apiVersion, kind, name, ok}, and every problem on stderr; the exit status
// is 1 if there is any. `k8s-validate --version` names the API modules it was built with.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/apimachinery/pkg/util/validation"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
)

// maxObjectBytes is etcd's default request limit, the size an object can have in practice.
const maxObjectBytes = 1 << 20

// maxAnnotationBytes is the API server's limit on all annotations of an object together.
const maxAnnotationBytes = 256 * 1024

func newScheme() *runtime.Scheme {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		appsv1.AddToScheme,
		autoscalingv2.AddToScheme,
		batchv1.AddToScheme,
		corev1.AddToScheme,
		networkingv1.AddToScheme,
		policyv1.AddToScheme,
		rbacv1.AddToScheme,
		monitoringv1.AddToScheme,
	} {
		if err := add(scheme); err != nil {
			panic(err)
		}
	}
	return scheme
}

type object struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Name       string `json:"name"`
	OK         bool   `json:"ok"`
}

type validator struct {
	decoder runtime.Decoder
	objects []object
	errs    []string
}

// documents splits a YAML stream at its `---` lines; documents holding only comments or
// whitespace (helm prints them for templates that render nothing) are left out.
func documents(r io.Reader) ([][]byte, error) {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(r))
	var docs [][]byte
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		if hasContent(doc) {
			docs = append(docs, doc)
		}
	}
}

func hasContent(doc []byte) bool {
	for _, line := range strings.Split(string(doc), "\n") {
		text := strings.TrimSpace(line)
		if text != "" && !strings.HasPrefix(text, "#") && text != "---" {
			return true
		}
	}
	return false
}

func (v *validator) fail(where, format string, args ...any) {
	v.errs = append(v.errs, where+": "+fmt.Sprintf(format, args...))
}

func (v *validator) check(where string, doc []byte) {
	before := len(v.errs)
	name, gvk := v.checkObject(where, doc)
	if gvk != nil {
		v.objects = append(v.objects, object{gvk.GroupVersion().String(), gvk.Kind, name, len(v.errs) == before})
	}
}

// checkObject records every problem of one document; it returns the object's name and kind,
// or a nil kind when the document is not an object of a known kind at all.
func (v *validator) checkObject(where string, doc []byte) (string, *schema.GroupVersionKind) {
	obj, gvk, err := v.decoder.Decode(doc, nil, nil)
	if err != nil {
		if runtime.IsNotRegisteredError(err) || runtime.IsMissingKind(err) || runtime.IsMissingVersion(err) {
			v.fail(where, "not a known kind: %v", err)
			return "", nil
		}
		if obj == nil || !runtime.IsStrictDecodingError(err) {
			v.fail(where, "does not decode: %v", err)
			return "", nil
		}
	}
	// A strict error comes with the object decoded leniently: it is named, and fails.
	strict := err
	accessor, err := meta.Accessor(obj)
	if err != nil {
		v.fail(where, "has no metadata: %v", err)
		return "", gvk
	}
	name := accessor.GetName()
	where = fmt.Sprintf("%s (%s %s)", where, gvk.Kind, name)
	if strict != nil {
		v.fail(where, "%v", strict)
	}
	v.checkMeta(where, gvk, accessor)
	switch o := obj.(type) {
	case *corev1.ConfigMap:
		v.checkConfigMap(where, o)
	case *appsv1.Deployment:
		v.checkSelects(where, o.Spec.Selector, o.Spec.Template.Labels)
	}
	if len(doc) > maxObjectBytes {
		v.fail(where, "is %d bytes, more than the %d an object can hold", len(doc), maxObjectBytes)
	}
	return name, gvk
}

// checkSelects: the API server refuses a workload whose selector does not select its template.
func (v *validator) checkSelects(where string, selector *metav1.LabelSelector, podLabels map[string]string) {
	if selector == nil {
		v.fail(where, "spec.selector is missing")
		return
	}
	parsed, err := metav1.LabelSelectorAsSelector(selector)
	if err != nil {
		v.fail(where, "spec.selector: %v", err)
		return
	}
	if parsed.Empty() || !parsed.Matches(labels.Set(podLabels)) {
		v.fail(where, "spec.selector %s does not select the pod template's labels %v", parsed, podLabels)
	}
}

func (v *validator) checkMeta(where string, gvk *schema.GroupVersionKind, m metav1Object) {
	name := m.GetName()
	if name == "" {
		v.fail(where, "metadata.name is empty")
	} else {
		check := validation.IsDNS1123Subdomain
		if gvk.Group == "" && gvk.Kind == "Service" {
			check = validation.IsDNS1035Label // a Service's name is a DNS label
		}
		for _, msg := range check(name) {
			v.fail(where, "metadata.name %q: %s", name, msg)
		}
	}
	for key, value := range m.GetLabels() {
		for _, msg := range validation.IsQualifiedName(key) {
			v.fail(where, "label key %q: %s", key, msg)
		}
		for _, msg := range validation.IsValidLabelValue(value) {
			v.fail(where, "label %s=%q: %s", key, value, msg)
		}
	}
	total := 0
	for key, value := range m.GetAnnotations() {
		for _, msg := range validation.IsQualifiedName(strings.ToLower(key)) {
			v.fail(where, "annotation key %q: %s", key, msg)
		}
		total += len(key) + len(value)
	}
	if total > maxAnnotationBytes {
		v.fail(where, "annotations take %d bytes, more than %d", total, maxAnnotationBytes)
	}
}

type metav1Object interface {
	GetName() string
	GetLabels() map[string]string
	GetAnnotations() map[string]string
}

func (v *validator) checkConfigMap(where string, cm *corev1.ConfigMap) {
	size := 0
	for key, value := range cm.Data {
		for _, msg := range validation.IsConfigMapKey(key) {
			v.fail(where, "data key %q: %s", key, msg)
		}
		size += len(key) + len(value)
	}
	for key, value := range cm.BinaryData {
		for _, msg := range validation.IsConfigMapKey(key) {
			v.fail(where, "binaryData key %q: %s", key, msg)
		}
		size += len(key) + len(value)
	}
	if size > maxObjectBytes {
		v.fail(where, "holds %d bytes of data, more than a ConfigMap's %d", size, maxObjectBytes)
	}
}

// version names this program's API modules, as built (go.mod's requirements).
func version() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "k8s-validate (no build information)"
	}
	var mods []string
	for _, dep := range info.Deps {
		switch dep.Path {
		case "k8s.io/api", "k8s.io/apimachinery",
			"github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring":
			mods = append(mods, dep.Path+" "+dep.Version)
		}
	}
	return fmt.Sprintf("k8s-validate %s (%s)", info.GoVersion, strings.Join(mods, ", "))
}

func main() {
	asJSON := flag.Bool("json", false, "print the objects as one JSON array instead of a line each")
	showVersion := flag.Bool("version", false, "print the API modules it was built with, and exit")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: k8s-validate [-json] [FILE...]  (no FILE: standard input)")
		flag.PrintDefaults()
	}
	flag.Parse()
	if *showVersion {
		fmt.Println(version())
		return
	}

	scheme := newScheme()
	v := &validator{decoder: kjson.NewSerializerWithOptions(
		kjson.DefaultMetaFactory, scheme, scheme,
		kjson.SerializerOptions{Yaml: true, Strict: true},
	)}
	inputs := flag.Args()
	if len(inputs) == 0 {
		inputs = []string{"-"}
	}
	for _, input := range inputs {
		var data []byte
		var err error
		if input == "-" {
			data, err = io.ReadAll(os.Stdin)
		} else {
			data, err = os.ReadFile(input)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		docs, err := documents(bytes.NewReader(data))
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: not a YAML stream: %v\n", input, err)
			os.Exit(1)
		}
		if len(docs) == 0 {
			v.errs = append(v.errs, input+": no objects")
		}
		for i, doc := range docs {
			v.check(fmt.Sprintf("%s: document %d", input, i+1), doc)
		}
	}
	if *asJSON {
		out, _ := json.Marshal(v.objects)
		fmt.Println(string(out))
	} else {
		for _, o := range v.objects {
			status := "ok"
			if !o.OK {
				status = "FAIL"
			}
			fmt.Printf("%s %s %s %s\n", status, o.APIVersion, o.Kind, o.Name)
		}
	}
	for _, e := range v.errs {
		fmt.Fprintln(os.Stderr, e)
	}
	if len(v.errs) > 0 {
		fmt.Fprintf(os.Stderr, "%d problem(s)\n", len(v.errs))
		os.Exit(1)
	}
}
