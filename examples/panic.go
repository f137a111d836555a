// Panics: Go exits 2, and so does runvm.
package main

func main() {
	panic("something went wrong")
}
