// Reads whitespace-separated integers from stdin and prints their sum.
package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
)

func main() {
	sc := bufio.NewScanner(os.Stdin)
	sc.Split(bufio.ScanWords)
	sum := 0
	for sc.Scan() {
		n, err := strconv.Atoi(sc.Text())
		if err != nil {
			fmt.Fprintln(os.Stderr, "not a number:", sc.Text())
			os.Exit(1)
		}
		sum += n
	}
	fmt.Println(sum)
}
