// Image-build check: must print "hello, world". The blank imports put the
// packages exercises use most into the image's warm build cache.
package main

import (
	_ "bufio"
	_ "container/heap"
	_ "encoding/json"
	"fmt"
	_ "math"
	_ "math/big"
	_ "os"
	_ "regexp"
	_ "sort"
	_ "strconv"
	_ "strings"
	_ "sync"
	_ "time"
)

func main() {
	fmt.Println("hello, world")
}
