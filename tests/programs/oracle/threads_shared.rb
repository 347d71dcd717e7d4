# Other threads mutate an array the main thread also holds, in lock step
# with it: each handshake is one statement that hands work over and waits
# for it to be done, so every thread sees the same values at every step in
# every run.
def start_worker(shared, jobs, done)
  Thread.new do
    job = jobs.pop
    while job
      shared << job * 10
      shared[0][:seen] << job
      mine = shared.size
      job = jobs.pop if done.push(mine)
    end
  end
end

def start_waiter(shared, lock, ready, flag, started)
  Thread.new do
    lock.synchronize do
      started.push(true)
      ready.wait(lock) until flag[0]
      shared << :woken
      flag << shared.size
    end
  end
end

jobs = Queue.new
done = Queue.new
log = {seen: []}
shared = [log]
worker = start_worker(shared, jobs, done)
done.pop if jobs.push(1)
shared << :main
got = done.pop if jobs.push(2)
shared.delete_at(1)
got = done.pop if jobs.push(3)
lock = Mutex.new
ready = ConditionVariable.new
flag = [false]
started = Queue.new
waiter = start_waiter(shared, lock, ready, flag, started)
started.pop
waiter.join if lock.synchronize { flag[0] = true; ready.signal }
jobs.push(nil)
worker.join
puts shared.size, log[:seen].size, flag.inspect
