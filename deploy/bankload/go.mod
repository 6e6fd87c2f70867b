module upi/deploy/bankload

go 1.26.0
