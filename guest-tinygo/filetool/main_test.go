package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runTool runs one command and returns its status, stdout and stderr.
func runTool(args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	code := run(args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestWriteCatCountLs(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "note.txt")

	code, out, _ := runTool("write", path, "hello  wide\nworld\n")
	if code != 0 || out != "wrote 18 bytes to "+path+"\n" {
		t.Fatalf("write: %d %q", code, out)
	}
	if code, out, _ = runTool("cat", path); code != 0 || out != "hello  wide\nworld\n" {
		t.Fatalf("cat: %d %q", code, out)
	}
	// \v is not a separator (as in Rust's u8::is_ascii_whitespace), \f is.
	if err := os.WriteFile(filepath.Join(dir, "a.txt"), []byte("no\vnew\fline"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, _ = runTool("count", path, filepath.Join(dir, "a.txt"))
	want := "2 3 18 " + path + "\n0 2 11 " + filepath.Join(dir, "a.txt") + "\n"
	if code != 0 || out != want {
		t.Fatalf("count: %d %q, want %q", code, out, want)
	}
	if code, out, _ = runTool("ls", dir); code != 0 || out != "a.txt\nnote.txt\n" {
		t.Fatalf("ls: %d %q", code, out)
	}
}

func TestFailureNamesCommandAndPath(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	code, out, errOut := runTool("cat", missing)
	if code != 1 || out != "" || errOut != "filetool: cat "+missing+": no such file or directory\n" {
		t.Fatalf("got %d %q %q", code, out, errOut)
	}
}

func TestCountPrintsUpToTheFailure(t *testing.T) {
	dir := t.TempDir()
	ok := filepath.Join(dir, "ok")
	if err := os.WriteFile(ok, []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runTool("count", ok, filepath.Join(dir, "nope"))
	if code != 1 || out != "1 1 2 "+ok+"\n" || !strings.HasPrefix(errOut, "filetool: count ") {
		t.Fatalf("got %d %q %q", code, out, errOut)
	}
}

func TestEnv(t *testing.T) {
	t.Setenv("FILETOOL_SET", "a=b")
	code, out, _ := runTool("env", "FILETOOL_SET", "FILETOOL_SURELY_UNSET")
	if code != 0 || out != "FILETOOL_SET=a=b\nFILETOOL_SURELY_UNSET is not set\n" {
		t.Fatalf("got %d %q", code, out)
	}
}

func TestBadUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"cat"}, {"write", "x"}, {"frobnicate"}, {"ls", "a", "b"}} {
		if code, out, errOut := runTool(args...); code != 2 || out != "" || !strings.HasPrefix(errOut, "usage: ") {
			t.Errorf("%q: got %d %q %q", args, code, out, errOut)
		}
	}
}
