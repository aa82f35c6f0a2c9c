#include <stdio.h>
#include "nabla.h"
int main(void) { return 0; }
