// Does not compile: runvm exits 126 and prints the compiler's message.
package main

func main() {
	undefinedFunction()
}
