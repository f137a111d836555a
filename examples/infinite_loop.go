// Never ends: runvm stops it at --timeout and exits 124.
package main

func main() {
	for {
	}
}
