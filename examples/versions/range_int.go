// Needs Go 1.22 or later: range over an integer. Go 1.19 refuses it at
// compile time ("cannot range over 3").
package main

import "fmt"

func main() {
	for i := range 3 {
		fmt.Print(i, " ")
	}
	fmt.Println()
}
