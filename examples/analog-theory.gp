# Error f(w) - f* against iteration for each algorithm of analog-theory.sh.
# Called as: gnuplot -e "csv='FILE'; png='FILE'; floor=VALUE" analog-theory.gp
if (!exists("csv")) csv = 'runs/analog-theory/analog-theory.csv'
if (!exists("png")) png = 'runs/analog-theory/analog-theory.png'
if (!exists("floor")) floor = 0

set terminal pngcairo size 1000,650 enhanced font ',11'
set output png
set datafile separator ','
set key outside right top
set logscale y
set format y '10^{%L}'
set xlabel 'iteration'
set ylabel 'f(w) - f^*'
set title 'Least squares on a softbounds device: analog training vs digital SGD'
set grid

algos = 'digital analog-sgd tiki-taka residual analog-sgd/stochastic tiki-taka/stochastic residual/stochastic'
styles = '1 2 3 4 2 3 4'
dashes = '1 1 1 1 2 2 2'

plot for [i=1:words(algos)] csv skip 1 \
       using 1:(strcol(2) eq word(algos, i) ? $3 : 1/0) \
       with lines lw 2 lc int(word(styles, i)) dt int(word(dashes, i)) title word(algos, i), \
     (floor > 0 ? floor : 1/0) with lines lc rgb 'black' dt 3 title 'predicted Analog SGD floor'
