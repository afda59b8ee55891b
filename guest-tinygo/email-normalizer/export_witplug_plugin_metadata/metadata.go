// Package export_witplug_plugin_metadata implements the exported `metadata` interface.
//
// wit-bindgen-go names the package after the interface; `wit_exports.go`, the generated
// package main, calls Describe.
package export_witplug_plugin_metadata

import (
	metadata "wit_component/witplug_plugin_metadata"

	"witplug.dev/guestgc"
)

// Describe says what this plugin is.
func Describe() metadata.PluginInfo {
	guestgc.Collect()
	return metadata.PluginInfo{
		Name:        "email-normalizer",
		Version:     "0.1.0",
		Description: "Trims text fields, validates and lowercases email addresses, splits multi-address fields, drops blocked domains (Go guest).",
	}
}
