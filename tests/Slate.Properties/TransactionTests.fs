module Slate.Properties.TransactionTests

open Expecto

let allTests = testList "Transaction" []
