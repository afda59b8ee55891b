// Command filetool is a small `wasi:cli/command` guest that touches files and the
// environment, to exercise the host's capability grants. It mirrors
// guest-rust/filetool subcommand for subcommand.
//
// It is a plain Go program without bindings: built with `GOOS=wasip1 GOARCH=wasm go build`,
// it becomes a component through the preview1 command adapter (see `cargo xtask build`).
//
// Exit status: 0 on success, 1 on failure (`filetool: CMD PATH: ERROR` on stderr), 2 on bad
// usage. NOTE: through the preview1 adapter every non-zero status arrives as 1.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

const usage = `usage: filetool cat PATH
       filetool count PATH...
       filetool write PATH TEXT
       filetool ls DIR
       filetool env NAME...
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one command and returns the process exit status.
func run(args []string, stdout, stderr io.Writer) int {
	out := bufio.NewWriter(stdout)
	defer out.Flush()

	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, rest := args[0], args[1:]

	var err error
	switch {
	case cmd == "cat" && len(rest) == 1:
		err = cat(out, rest[0])
	case cmd == "count" && len(rest) >= 1:
		err = count(out, rest)
	case cmd == "write" && len(rest) == 2:
		err = write(out, rest[0], rest[1])
	case cmd == "ls" && len(rest) == 1:
		err = list(out, rest[0])
	case cmd == "env" && len(rest) >= 1:
		env(out, rest)
	default:
		fmt.Fprint(stderr, usage)
		return 2
	}

	if err != nil {
		out.Flush() // keep what was printed before the failure ahead of the message
		fmt.Fprintf(stderr, "filetool: %s %v\n", cmd, err)
		return 1
	}
	return 0
}

// pathError is a failure of a command on one path; it prints as `PATH: ERROR`.
type pathError struct {
	path string
	err  error
}

func (e *pathError) Error() string { return e.path + ": " + e.err.Error() }

// failed wraps err for path, reducing *fs.PathError to its cause: the message names the
// path once, as `filetool: CMD PATH: ERROR`.
func failed(path string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return &pathError{path: path, err: err}
}

func cat(out io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return failed(path, err)
	}
	defer f.Close()
	if _, err := io.Copy(out, f); err != nil {
		return failed(path, err)
	}
	return nil
}

// count prints, like wc, the number of newlines, of words separated by ASCII whitespace
// and of bytes of each file.
func count(out io.Writer, paths []string) error {
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			return failed(path, err)
		}
		lines := bytes.Count(data, []byte{'\n'})
		words := len(bytes.FieldsFunc(data, isASCIISpace))
		fmt.Fprintf(out, "%d %d %d %s\n", lines, words, len(data), path)
	}
	return nil
}

func write(out io.Writer, path, text string) error {
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		return failed(path, err)
	}
	fmt.Fprintf(out, "wrote %d bytes to %s\n", len(text), path)
	return nil
}

func list(out io.Writer, dir string) error {
	entries, err := os.ReadDir(dir) // sorted by name
	if err != nil {
		return failed(dir, err)
	}
	for _, e := range entries {
		fmt.Fprintln(out, e.Name())
	}
	return nil
}

func env(out io.Writer, names []string) {
	for _, name := range names {
		if value, ok := os.LookupEnv(name); ok {
			fmt.Fprintf(out, "%s=%s\n", name, value)
		} else {
			fmt.Fprintf(out, "%s is not set\n", name)
		}
	}
}

// isASCIISpace reports whether r is space, tab, newline, form feed or carriage return, as
// Rust's u8::is_ascii_whitespace (unlike unicode.IsSpace, which also takes \v and U+0085).
func isASCIISpace(r rune) bool {
	return r == ' ' || r == '\t' || r == '\n' || r == '\f' || r == '\r'
}
