"""The training queue (resources.job_queue) on a real local Ray: lanes drain it longest first, a
restarted lane gets its unfinished job back, and a group's lanes never take another group's jobs."""


from analysis.roles import CONTROL, MULTITASK
from runner.config import load_config, preset_path
from runner.plan import TrainJob
from runner.training.queue import JobQueue, by_expected_work


def job(job_id: str, role: str = CONTROL, tasks=("a",), max_steps: int = 10, min_steps: int = 0, batch: int = 8):
    return TrainJob.standalone(load_config(preset_path("tiny")), role, tasks, id=job_id, max_steps=max_steps,
                               min_steps=min_steps, batch_size=batch)


def test_lanes_drain_the_queue_and_a_restarted_lane_resumes_its_job(local_ray):
    ray = local_ray
    queue = JobQueue.remote({"cell": [job("a"), job("b"), job("c")], "other": [job("x")]})
    first = ray.get(queue.next.remote("cell", "lane-0"))
    second = ray.get(queue.next.remote("cell", "lane-1"))
    assert (first.id, second.id) == ("a", "b")
    # Lane 0's worker group restarts before finishing: it asks again and gets "a" back.
    assert ray.get(queue.next.remote("cell", "lane-0")).id == "a"
    assert ray.get(queue.next.remote("cell", "lane-0", "a")).id == "c"
    assert ray.get(queue.next.remote("cell", "lane-1", "b")) is None  # drained: cell's "x" is not its
    assert ray.get(queue.next.remote("cell", "lane-0", "c")) is None
    assert ray.get(queue.taken.remote("lane-0")) == ["a", "c"] and ray.get(queue.taken.remote("lane-1")) == ["b"]
    assert ray.get(queue.next.remote("other", "other-lane")).id == "x"


def test_the_longest_jobs_go_first():
    jobs = [job("short", tasks=("s",)), job("long", tasks=("l",)),
            job("multitask", role=MULTITASK, tasks=("s", "l"), max_steps=500, min_steps=40, batch=16)]
    ordered = by_expected_work(jobs, {"s": 100.0, "l": 300.0})
    # E by its exposure steps (40 x 16 x 200 chars), then controls by their task's example size.
    assert [j.id for j in ordered] == ["multitask", "long", "short"]
