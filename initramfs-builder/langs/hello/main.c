/* Image-build check: must print "hello, world". */
#include <math.h>
#include <stdio.h>

int main(void)
{
    printf("hello, world%s\n", sqrt(4.0) == 2.0 ? "" : "?");
    return 0;
}
